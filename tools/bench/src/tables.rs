//! The report's tables, built from the samples: which figure is compared to which floor,
//! and held to which target.

use crate::bins::SCALE_WORKERS;
use crate::latency::{Samples, Scenario};
use crate::report::{Row, Table, Target, Unit};
use crate::stats::Summary;
use crate::throughput::{Load, Rates};
use crate::{http, shield_cost};

// The scenarios' indices in `latency_scenarios`.
const SIMPLE: usize = 0;
const COMPLEX_IDLE: usize = 1;
const COMPLEX_BUSY: usize = 2;
const FLOOR_CTRLC: usize = 3;
const FLOOR_CHILDREN: usize = 4;

/// Launch to ready and signal to exit, against the floors.
pub fn latency_table(samples: &[Samples], busy16_stop: Option<(usize, Summary)>) -> Table {
    let ready = |i: usize| Summary::of(&samples[i].ready_ms);
    let stop = |i: usize| Summary::of(&samples[i].stop_ms);
    let median = |s: Option<Summary>| s.map(|s| s.median);
    let stop_target = |median, p99| {
        Some(Target::Below {
            median,
            p99: Some(p99),
        })
    };
    let mut rows = vec![
        Row {
            what: "`simple`: launch → ready".into(),
            summary: ready(SIMPLE),
            floor: median(ready(FLOOR_CTRLC)),
            target: Some(Target::Below {
                median: 3.0,
                p99: None,
            }),
        },
        Row {
            what: "`complex` (4 workers): launch → ready".into(),
            summary: ready(COMPLEX_IDLE),
            floor: median(ready(FLOOR_CHILDREN)),
            target: Some(Target::Below {
                median: 10.0,
                p99: None,
            }),
        },
        Row {
            what: "`simple`: SIGINT → exit, idle".into(),
            summary: stop(SIMPLE),
            floor: median(stop(FLOOR_CTRLC)),
            target: stop_target(1.5, 5.0),
        },
        Row {
            what: "`complex`: SIGINT → exit, idle (`--busy-tasks 0`)".into(),
            summary: stop(COMPLEX_IDLE),
            floor: median(stop(FLOOR_CHILDREN)),
            target: stop_target(5.0, 15.0),
        },
        Row {
            what: "`complex`: SIGINT → exit, busy (`--busy-tasks 4`)".into(),
            summary: stop(COMPLEX_BUSY),
            floor: median(stop(FLOOR_CHILDREN)),
            target: stop_target(5.0, 15.0),
        },
    ];
    if let Some((pool, summary)) = busy16_stop {
        rows.push(Row {
            what: format!(
                "`complex`: SIGINT → exit, busy (`--busy-tasks 16 --pool-threads {pool}`, throughput runs)"
            ),
            summary: Some(summary),
            floor: median(stop(FLOOR_CHILDREN)),
            target: stop_target(5.0, 15.0),
        });
    }
    rows.extend([
        Row {
            what: "floor: `floor-ctrlc` launch → ready".into(),
            summary: ready(FLOOR_CTRLC),
            floor: None,
            target: None,
        },
        Row {
            what: "floor: `floor-ctrlc` SIGINT → exit".into(),
            summary: stop(FLOOR_CTRLC),
            floor: None,
            target: None,
        },
        Row {
            what: "floor: `floor-children` (4 children) launch → ready".into(),
            summary: ready(FLOOR_CHILDREN),
            floor: None,
            target: None,
        },
        Row {
            what: "floor: `floor-children` SIGINT → exit".into(),
            summary: stop(FLOOR_CHILDREN),
            floor: None,
            target: None,
        },
    ]);
    Table {
        title: "Launch to ready, signal to exit".into(),
        unit: Unit::Ms,
        rows,
    }
}

/// Peak memory, against the floors.
pub fn memory_table(samples: &[Samples], busy16_tree: Option<(usize, Summary)>) -> Table {
    let mb = |values: &[f64]| Summary::of(&kib_to_mb(values));
    let median = |s: Option<Summary>| s.map(|s| s.median);
    let floor_tree = median(mb(&samples[FLOOR_CHILDREN].tree_kib));
    let tree_target = Some(Target::Below {
        median: 20.0,
        p99: None,
    });
    let mut rows = vec![
        Row {
            what: "`simple`: main process".into(),
            summary: mb(&samples[SIMPLE].main_kib),
            floor: median(mb(&samples[FLOOR_CTRLC].main_kib)),
            target: Some(Target::Below {
                median: 8.0,
                p99: None,
            }),
        },
        Row {
            what: "`complex` idle: main process".into(),
            summary: mb(&samples[COMPLEX_IDLE].main_kib),
            floor: median(mb(&samples[FLOOR_CHILDREN].main_kib)),
            target: None,
        },
        Row {
            what: "`complex` idle: each worker".into(),
            summary: mb(&samples[COMPLEX_IDLE].worker_kib),
            floor: median(mb(&samples[FLOOR_CHILDREN].worker_kib)),
            target: None,
        },
        Row {
            what: "`complex` idle: tree (main + 4 workers)".into(),
            summary: mb(&samples[COMPLEX_IDLE].tree_kib),
            floor: floor_tree,
            target: tree_target,
        },
        Row {
            what: "`complex` busy (`--busy-tasks 4`): tree".into(),
            summary: mb(&samples[COMPLEX_BUSY].tree_kib),
            floor: floor_tree,
            target: tree_target,
        },
    ];
    if let Some((pool, summary)) = busy16_tree {
        rows.push(Row {
            what: format!("`complex` busy (`--busy-tasks 16 --pool-threads {pool}`): tree"),
            summary: Some(summary),
            floor: floor_tree,
            target: tree_target,
        });
    }
    rows.extend([
        Row {
            what: "`complex` idle: tree, PSS just before the stop (shared pages counted once)".into(),
            summary: mb(&samples[COMPLEX_IDLE].tree_pss_kib),
            floor: median(mb(&samples[FLOOR_CHILDREN].tree_pss_kib)),
            target: None,
        },
        Row {
            what: "floor: `floor-ctrlc`".into(),
            summary: mb(&samples[FLOOR_CTRLC].main_kib),
            floor: None,
            target: None,
        },
        Row {
            what: "floor: `floor-children` tree (main + 4 children)".into(),
            summary: mb(&samples[FLOOR_CHILDREN].tree_kib),
            floor: None,
            target: None,
        },
    ]);
    Table {
        title: "Peak memory (RSS; main: `ru_maxrss` from `wait4`; workers: `VmHWM` just before the stop)"
            .into(),
        unit: Unit::Mb,
        rows,
    }
}

/// The throughput table, and the index of the best `--busy-tasks 16` load.
pub fn throughput_table(
    loads: &[Load],
    suite: &[Rates],
    floor_threads: &[usize],
    floor: &[Rates],
    notes: &mut Vec<String>,
) -> (Table, Option<usize>) {
    let floor_for = |threads: usize| {
        floor_threads
            .iter()
            .position(|&t| t == threads)
            .and_then(|i| Summary::of(&floor[i].per_second))
            .map(|s| s.median)
    };
    let best = loads
        .iter()
        .enumerate()
        .filter(|(_, load)| load.busy == 16)
        .filter_map(|(i, _)| Summary::of(&suite[i].per_second).map(|s| (i, s.median)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i);
    let mut rows = Vec::new();
    for (i, (load, rates)) in loads.iter().zip(suite).enumerate() {
        let is_best = Some(i) == best;
        rows.push(Row {
            what: format!(
                "`complex --busy-tasks {} --pool-threads {}`{}",
                load.busy,
                load.pool,
                if is_best { " (best for 16)" } else { "" }
            ),
            summary: Summary::of(&rates.per_second),
            floor: floor_for(load.busy),
            target: is_best.then_some(Target::AtLeast(100_000.0)),
        });
        note_failures(
            notes,
            &format!("complex busy {} pool {}", load.busy, load.pool),
            &rates.failures,
        );
        if rates.calls_failed > 0 {
            notes.push(format!(
                "`--busy-tasks {} --pool-threads {}`: {} calls failed over all runs.",
                load.busy, load.pool, rates.calls_failed
            ));
        }
    }
    for (threads, rates) in floor_threads.iter().zip(floor) {
        rows.push(Row {
            what: format!("floor: `floor-pipes --threads {threads}` (round trips)"),
            summary: Summary::of(&rates.per_second),
            floor: None,
            target: None,
        });
        note_failures(notes, &format!("floor-pipes {threads}"), &rates.failures);
    }
    notes.push(
        "Throughput: `calls_ok` of the `MPM.stop: summary` event over the time between the \
         process's own `app started` and `MPM stopping` timestamps; workers 4; the floor row \
         compared is `floor-pipes` with as many threads as busy tasks."
            .into(),
    );
    let table = Table {
        title: "Throughput: completed calls through the whole stack".into(),
        unit: Unit::PerSecond,
        rows,
    };
    (table, best)
}

/// The HTTP example against a bare axum; the stop's failures go to the notes.
pub fn http_table(suite: &http::Rates, floor: &http::Rates, notes: &mut Vec<String>) -> Table {
    let floor_median = Summary::of(&floor.per_second).map(|s| s.median);
    note_failures(notes, "examples/http", &suite.failures);
    note_failures(notes, "floor-axum", &floor.failures);
    let met = if suite.failed == 0 { "met" } else { "**not met**" };
    notes.push(format!(
        "HTTP: {} keep-alive clients looping `GET /healthz` (std `TcpStream`), answers counted \
         over the hold; both servers on a current-thread runtime. Through the example's stop \
         (SIGINT under the same load, `{}`): {} request(s) the server took failed over all \
         runs (target 0: {met}); {} request(s) went out on keep-alive connections the server \
         was closing as idle and were never taken (a client retries those).",
        http::CLIENTS,
        http::EXAMPLE_ARGS[2..6].join(" "),
        suite.failed,
        suite.not_taken
    ));
    Table {
        title: "HTTP: answers per second".into(),
        unit: Unit::PerSecond,
        rows: vec![
            Row {
                what: "`examples/http` (the edge, the drain's middleware)".into(),
                summary: Summary::of(&suite.per_second),
                floor: floor_median,
                target: None,
            },
            Row {
                what: "floor: `floor-axum` (bare axum hello-world)".into(),
                summary: Summary::of(&floor.per_second),
                floor: None,
                target: None,
            },
        ],
    }
}

/// The shield against a bare atomic pair.
pub fn shield_table(costs: &shield_cost::Costs) -> Table {
    let median = |values: &[f64]| Summary::of(values).map(|s| s.median);
    Table {
        title: "The shield: one enter+leave".into(),
        unit: Unit::Ns,
        rows: vec![
            Row {
                what: "`Shield` uncontended (1 thread)".into(),
                summary: Summary::of(&costs.uncontended),
                floor: median(&costs.floor_uncontended),
                target: Some(Target::Below {
                    median: 50.0,
                    p99: None,
                }),
            },
            Row {
                what: format!(
                    "`Shield` contended ({} threads, one shield)",
                    shield_cost::THREADS
                ),
                summary: Summary::of(&costs.contended),
                floor: median(&costs.floor_contended),
                target: None,
            },
            Row {
                what: "floor: atomic `fetch_add` + `fetch_sub`, 1 thread".into(),
                summary: Summary::of(&costs.floor_uncontended),
                floor: None,
                target: None,
            },
            Row {
                what: format!("floor: atomic pair, {} threads", shield_cost::THREADS),
                summary: Summary::of(&costs.floor_contended),
                floor: None,
                target: None,
            },
        ],
    }
}

/// KiB samples as MB (10^6 bytes).
pub fn kib_to_mb(kib: &[f64]) -> Vec<f64> {
    kib.iter().map(|k| k * 1024.0 / 1e6).collect()
}

/// Adds a note for a scenario whose runs failed: how many, and the first reason.
pub fn note_failures(notes: &mut Vec<String>, name: &str, failures: &[String]) {
    if let Some(first) = failures.first() {
        notes.push(format!(
            "**{name}: {} run(s) failed and are not counted**; first: {first}",
            failures.len()
        ));
    }
}

/// The scale tables: launch to ready and SIGINT to exit of `complex` at `--time-scale 0.1`
/// as the workers and the busy tasks grow (the stop should not grow with the queue at all:
/// calls not begun are withdrawn at the stop); then, as the workers grow, what each extra
/// worker adds to the launch beside what each extra child adds to `floor-children`, the
/// tree's PSS and the main process's threads. `scenarios` are in the order of
/// [`Bins::scale_scenarios`](crate::bins::Bins::scale_scenarios).
pub fn scale_tables(scenarios: &[Scenario], samples: &[Samples]) -> Vec<Table> {
    let counts = SCALE_WORKERS.len();
    let suite = scenarios.len() - counts;
    let (workers, floors) = (&samples[..counts], &samples[suite..]);
    let rows = |metric: fn(&Samples) -> &Vec<f64>| {
        scenarios[..suite]
            .iter()
            .zip(samples)
            .map(|(scenario, samples)| Row {
                what: scenario.name.clone(),
                summary: Summary::of(metric(samples)),
                floor: None,
                target: None,
            })
            .collect()
    };
    // Each run's launch minus the median launch with one worker (child), per one added.
    let per_added = |samples: &[Samples], i: usize| -> Vec<f64> {
        let one = Summary::of(&samples[0].ready_ms).map_or(f64::NAN, |s| s.median);
        let added = (SCALE_WORKERS[i] - SCALE_WORKERS[0]) as f64;
        samples[i].ready_ms.iter().map(|ms| (ms - one) / added).collect()
    };
    let median = |values: &[f64]| Summary::of(values).map(|s| s.median);
    let by_workers = |summary: &dyn Fn(usize) -> Option<Summary>, floor: &dyn Fn(usize) -> Option<f64>| {
        SCALE_WORKERS
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let summary = summary(i)?;
                Some(Row {
                    what: format!("`--workers {n}`"),
                    summary: Some(summary),
                    floor: floor(i),
                    target: None,
                })
            })
            .collect()
    };
    vec![
        Table {
            title: "Scale, `complex --time-scale 0.1`: launch → ready".into(),
            unit: Unit::Ms,
            rows: rows(|s| &s.ready_ms),
        },
        Table {
            title: "Scale, `complex --time-scale 0.1`: SIGINT → exit (calls not begun are withdrawn)".into(),
            unit: Unit::Ms,
            rows: rows(|s| &s.stop_ms),
        },
        Table {
            title: "Scale: launch → ready per extra worker, against `floor-children` per extra child".into(),
            unit: Unit::Ms,
            rows: by_workers(
                &|i| (i > 0).then(|| Summary::of(&per_added(workers, i))).flatten(),
                &|i| median(&per_added(floors, i)),
            ),
        },
        Table {
            title: "Scale: the tree's PSS (main + workers), against `floor-children` with as many children"
                .into(),
            unit: Unit::Mb,
            rows: by_workers(&|i| Summary::of(&kib_to_mb(&workers[i].tree_pss_kib)), &|i| {
                median(&kib_to_mb(&floors[i].tree_pss_kib))
            }),
        },
        Table {
            title: "Scale: threads of the main process once ready".into(),
            unit: Unit::Count,
            rows: by_workers(&|i| Summary::of(&workers[i].threads), &|_| None),
        },
    ]
}
