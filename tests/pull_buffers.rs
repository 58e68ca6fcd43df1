//! Large pulls decompress into recycled buffers: once a batch's records are dropped, its
//! buffer serves the next large pull instead of going back to `malloc`, whose single arena
//! fragments (and the resident set grows with the backlog) when buffers of several MiB come
//! and go among smaller allocations. Its own test binary: the pool is process-wide.

mod support;

use siem_forwarder::producer::generator::AuditLogGenerator;
use siem_forwarder::source::api::cursor::CursorFrom;
use siem_forwarder::source::api::put_logs::PutTarget;
use siem_forwarder::source::buffers::{MIN_POOLED, PULL_BUFFERS};

use support::TestServer;

#[tokio::test]
async fn a_large_pull_reuses_the_buffer_of_a_dropped_batch() {
    let server = TestServer::start(&[("audit", 1)]).await;
    let client = server.client();
    let mut generator = AuditLogGenerator::new(7);
    for _ in 0..3 {
        client
            .put_logs(
                "audit",
                PutTarget::LoadBalanced,
                &generator.group(1000, 1_700_000_000),
            )
            .await
            .unwrap();
    }
    let cursor = client
        .get_cursor("audit", 0, CursorFrom::Begin)
        .await
        .unwrap();
    let first = client.pull_logs("audit", 0, &cursor, 1000).await.unwrap();
    assert!(
        first.raw_size >= MIN_POOLED,
        "a large pull: {} bytes",
        first.raw_size
    );
    assert_eq!(first.records.len(), 3000);
    assert_eq!(PULL_BUFFERS.idle().0, 0, "the batch holds its buffer");

    drop(first);
    let (idle, capacity) = PULL_BUFFERS.idle();
    assert_eq!(
        idle, 1,
        "the dropped batch's buffer waits for the next pull"
    );
    assert!(capacity >= MIN_POOLED);

    let again = client.pull_logs("audit", 0, &cursor, 1000).await.unwrap();
    assert_eq!(again.records.len(), 3000);
    assert_eq!(
        PULL_BUFFERS.idle().0,
        0,
        "the next pull of the same size took the idle buffer"
    );
}
