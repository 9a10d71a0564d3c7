//! What the converter's tests share: running it on a log, and reading a picture back to
//! check that its text boxes (estimated as the tool estimates them, on the wide side)
//! neither overlap nor leave the canvas.

use std::io::Write;
use std::process::{Command, Stdio};

use roxmltree::{Document, Node};

/// Runs the converter on `log`; returns its stdout, stderr and status.
pub fn convert(log: &str, args: &[&str]) -> (String, String, i32) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_timeline"))
        .args(args)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the timeline");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = log.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("the timeline ends");
    writer.join().expect("the writer thread");
    (
        String::from_utf8(out.stdout).expect("UTF-8 output"),
        String::from_utf8(out.stderr).expect("UTF-8 errors"),
        out.status.code().unwrap_or(-1),
    )
}

/// A text's box: x0, y0, x1, y1, and the text itself for messages.
pub type TextBox = (f64, f64, f64, f64, String);

fn number(node: Node, name: &str) -> f64 {
    node.attribute(name)
        .unwrap_or_else(|| panic!("a text without {name}"))
        .parse()
        .expect("a number")
}

pub fn text_boxes(doc: &Document) -> Vec<TextBox> {
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| {
            // The writer puts the content on a line of its own; a renderer trims that.
            let content: String = n
                .descendants()
                .filter(|t| t.is_text())
                .filter_map(|t| t.text())
                .collect();
            let content = content.trim().to_string();
            let (x, y, size) = (number(n, "x"), number(n, "y"), number(n, "font-size"));
            let per_char = if n.attribute("font-weight") == Some("bold") {
                0.66
            } else {
                0.62
            };
            let w = content.chars().count() as f64 * size * per_char;
            let x0 = match n.attribute("text-anchor") {
                Some("middle") => x - w / 2.0,
                Some("end") => x - w,
                _ => x,
            };
            (x0, y - 0.8 * size, x0 + w, y + 0.25 * size, content)
        })
        .collect()
}

/// Panics with the culprits if two texts overlap or one leaves the canvas.
pub fn assert_labels_apart(svg: &str) {
    let doc = Document::parse(svg).expect("the SVG is well-formed XML");
    let root = doc.root_element();
    let width = number(root, "width");
    let height = number(root, "height");
    let boxes = text_boxes(&doc);
    assert!(!boxes.is_empty(), "no text at all");
    for b in &boxes {
        assert!(
            b.0 >= 0.0 && b.2 <= width && b.1 >= 0.0 && b.3 <= height,
            "{:?} leaves the canvas ({width} x {height}): {b:?}",
            b.4
        );
    }
    for (i, a) in boxes.iter().enumerate() {
        for b in &boxes[i + 1..] {
            let x = a.2.min(b.2) - a.0.max(b.0);
            let y = a.3.min(b.3) - a.1.max(b.1);
            assert!(
                x <= 0.5 || y <= 0.5,
                "{:?} and {:?} overlap: {a:?} {b:?}",
                a.4,
                b.4
            );
        }
    }
}
