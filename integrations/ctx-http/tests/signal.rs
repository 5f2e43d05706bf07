//! A real SIGTERM sent to this test process (its own binary, so no other test sees it): the
//! shutdown's first phase starts, and the requests' root ends with the signal as its cause.

use std::time::Duration;

use ctx_http::{RequestEnd, Shutdown, ShutdownSignal};

#[tokio::test]
async fn sigterm_starts_the_shutdown_and_names_itself() {
    let shutdown = Shutdown::on_signals(Duration::from_millis(50)).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(10), shutdown.signalled())
        .await
        .expect("the signal arrived");
    tokio::time::timeout(Duration::from_secs(10), shutdown.context().done())
        .await
        .expect("the root ended after the grace period");
    let cause = shutdown.context().cause().unwrap();
    assert_eq!(
        cause.downcast_ref::<ShutdownSignal>(),
        Some(&ShutdownSignal::Terminate)
    );
    assert_eq!(cause.to_string(), "server shutting down (SIGTERM)");
    assert_eq!(
        RequestEnd::of(shutdown.context()),
        Some(RequestEnd::ShuttingDown)
    );
}
