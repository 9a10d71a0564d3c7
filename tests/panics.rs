//! [`CatchPanic`] as an embedder wraps a future with it: a panic inside becomes an error.

use std::future::Future;
use std::pin::Pin;

use graceful::panics::CatchPanic;

#[tokio::test]
async fn a_panicking_future_becomes_an_error() {
    let panicking: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async {
        panic!("injected");
    });
    assert_eq!(CatchPanic(panicking).await, Err("injected".to_owned()));
    let fine = Box::pin(async { 7 });
    assert_eq!(CatchPanic(fine).await, Ok(7));
}
