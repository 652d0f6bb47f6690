//! Smoke test of the [`Daemon`] helper: a real wormholed on a temporary socket, reached by the
//! real wormholectl with the same environment. If this fails, every end-to-end test fails.

use wormhole_tests::{assert_success, run, Daemon, MailboxServer, TIMEOUT};

/// wormholed starts on the socket the harness chose, announces it, and wormholectl reaches it.
#[test]
fn daemon_starts_on_a_temporary_socket_and_ctl_reaches_it() {
    let server = MailboxServer::start();
    let mut daemon = Daemon::start(&server);
    assert!(daemon.socket().starts_with(daemon.dir()));
    assert!(
        daemon.socket().exists(),
        "no socket at {}",
        daemon.socket().display()
    );

    assert_success(&run(daemon.ctl().arg("list"), TIMEOUT));

    // Not `wormholectl` after stop(): it would start a daemon of its own, which no handle of
    // ours could stop.
    daemon.stop();
}
