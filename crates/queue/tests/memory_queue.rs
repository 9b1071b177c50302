//! The file-mode memory queue: ordering, termination, stop and backpressure.

use std::time::Duration;

use spyder_model::HostName;
use spyder_queue::{Closed, Lease, MemoryQueue, PushError, QueueDepth, Source};

/// Upper bound for anything that is expected to happen.
const BOUND: Duration = Duration::from_secs(10);

fn host(name: &str) -> HostName {
    HostName::from_input(name).expect("valid test host")
}

async fn next(queue: &MemoryQueue) -> Option<Lease> {
    tokio::time::timeout(BOUND, queue.next())
        .await
        .expect("next() resolves within the bound")
}

async fn take(queue: &MemoryQueue) -> (String, Source) {
    let lease = next(queue).await.expect("an item is pending");
    (lease.host.to_string(), lease.source)
}

/// True when `fut` is still pending once the runtime has nothing else to do. With the
/// clock paused, the timeout fires as soon as every task is idle: no real waiting.
async fn still_pending<F: std::future::Future>(fut: F) -> bool {
    tokio::time::timeout(Duration::from_secs(3600), fut)
        .await
        .is_err()
}

#[tokio::test]
async fn input_is_served_before_discoveries() {
    let queue = MemoryQueue::new(10, 10);
    queue.try_push_discovered(host("d1.example")).expect("room");
    queue.push_input(host("i1.example")).await.expect("open");
    queue.push_input(host("i2.example")).await.expect("open");
    queue.try_push_api(host("a1.example")).expect("room");
    queue.try_push_discovered(host("d2.example")).expect("room");
    assert_eq!(
        queue.depth(),
        QueueDepth {
            input: 3,
            discovered: 2,
            held: 0
        }
    );
    assert_eq!(take(&queue).await, ("i1.example".into(), Source::Input));
    assert_eq!(take(&queue).await, ("i2.example".into(), Source::Input));
    assert_eq!(take(&queue).await, ("a1.example".into(), Source::Api));
    // Only now that no input item waits do discoveries come out, in order.
    assert_eq!(
        take(&queue).await,
        ("d1.example".into(), Source::Discovered)
    );
    queue.push_input(host("i3.example")).await.expect("open");
    assert_eq!(take(&queue).await, ("i3.example".into(), Source::Input));
    assert_eq!(
        take(&queue).await,
        ("d2.example".into(), Source::Discovered)
    );
}

#[tokio::test(start_paused = true)]
async fn next_waits_while_the_input_is_open() {
    let queue = MemoryQueue::new(4, 4);
    assert!(
        still_pending(queue.next()).await,
        "open input, nothing pending"
    );
    queue.close_input();
    assert!(next(&queue).await.is_none(), "closed, empty, nothing held");
}

#[tokio::test(start_paused = true)]
async fn an_outstanding_lease_keeps_the_queue_alive_until_released() {
    let queue = MemoryQueue::new(4, 4);
    queue.push_input(host("a.example")).await.expect("open");
    queue.close_input();
    let lease = next(&queue).await.expect("a.example");
    assert_eq!(queue.depth().held, 1);
    // The task may still discover more: the queue is not done.
    assert!(still_pending(queue.next()).await);

    // A waiter parked before the discovery arrives gets it.
    let waiter = {
        let queue = queue.clone();
        tokio::spawn(async move { queue.next().await.map(|l| l.host.to_string()) })
    };
    tokio::task::yield_now().await;
    queue
        .try_push_discovered(host("found.example"))
        .expect("room");
    lease.ack();
    let found = tokio::time::timeout(BOUND, waiter)
        .await
        .expect("bounded")
        .expect("task ran");
    assert_eq!(found.as_deref(), Some("found.example"));
    // That lease was dropped by the waiter task: now the queue is done.
    assert!(next(&queue).await.is_none());
    assert_eq!(queue.depth(), QueueDepth::default());
    assert_eq!(
        queue.try_push_discovered(host("late.example")),
        Err(PushError::Closed)
    );
    assert_eq!(
        queue.try_push_api(host("late.example")),
        Err(PushError::Closed)
    );
}

#[tokio::test(start_paused = true)]
async fn every_parked_worker_sees_the_end() {
    let queue = MemoryQueue::new(4, 4);
    queue.push_input(host("only.example")).await.expect("open");
    let lease = next(&queue).await.expect("item");
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let queue = queue.clone();
            tokio::spawn(async move { queue.next().await.is_none() })
        })
        .collect();
    tokio::task::yield_now().await;
    queue.close_input();
    drop(lease);
    for worker in workers {
        let ended = tokio::time::timeout(BOUND, worker)
            .await
            .expect("bounded")
            .expect("task ran");
        assert!(ended);
    }
}

#[tokio::test(start_paused = true)]
async fn stop_ends_next_at_once_and_drain_reports_pending_items() {
    let queue = MemoryQueue::new(1, 10);
    queue.push_input(host("p1.example")).await.expect("open");
    queue.try_push_discovered(host("d1.example")).expect("room");
    let held = next(&queue).await.expect("p1");
    queue.push_input(host("p2.example")).await.expect("open");
    // The reader is blocked on a full input side; stop releases it with an error.
    let blocked_push = {
        let queue = queue.clone();
        tokio::spawn(async move { queue.push_input(host("p3.example")).await })
    };
    tokio::task::yield_now().await;
    queue.stop();
    assert!(next(&queue).await.is_none(), "pending items are not served");
    let pushed = tokio::time::timeout(BOUND, blocked_push)
        .await
        .expect("bounded")
        .expect("task ran");
    assert_eq!(pushed, Err(Closed));
    assert_eq!(queue.push_input(host("p4.example")).await, Err(Closed));
    assert_eq!(queue.depth().held, 1);
    let pending: Vec<String> = queue.drain().iter().map(ToString::to_string).collect();
    assert_eq!(pending, ["p2.example", "d1.example"]);
    drop(held);
    assert_eq!(queue.depth(), QueueDepth::default());
}

#[tokio::test(start_paused = true)]
async fn the_input_side_applies_backpressure() {
    let queue = MemoryQueue::new(2, 100_000);
    queue.push_input(host("a.example")).await.expect("open");
    queue.push_input(host("b.example")).await.expect("open");
    assert!(still_pending(queue.push_input(host("c.example"))).await);
    assert_eq!(queue.depth().input, 2, "a cancelled push adds nothing");
    assert_eq!(
        queue.try_push_api(host("api.example")),
        Err(PushError::Full)
    );

    let reader = {
        let queue = queue.clone();
        tokio::spawn(async move { queue.push_input(host("c.example")).await })
    };
    tokio::task::yield_now().await;
    assert!(!reader.is_finished(), "the reader waits for room");
    assert_eq!(take(&queue).await.0, "a.example");
    tokio::time::timeout(BOUND, reader)
        .await
        .expect("bounded")
        .expect("task ran")
        .expect("pushed once there was room");
    assert_eq!(take(&queue).await.0, "b.example");
    assert_eq!(take(&queue).await.0, "c.example");
}

#[tokio::test]
async fn the_discovery_side_is_bounded_without_waiting() {
    let queue = MemoryQueue::new(1, 3);
    for i in 0..3 {
        queue
            .try_push_discovered(host(&format!("d{i}.example")))
            .expect("room");
    }
    assert_eq!(
        queue.try_push_discovered(host("d3.example")),
        Err(PushError::Full)
    );
    let _lease = next(&queue).await.expect("d0");
    queue
        .try_push_discovered(host("d3.example"))
        .expect("room again");
    assert_eq!(queue.depth().discovered, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_workers_crawl_everything_then_all_stop() {
    const INPUT: usize = 5_000;
    let queue = MemoryQueue::new(64, 100_000);
    let reader = {
        let queue = queue.clone();
        tokio::spawn(async move {
            for i in 0..INPUT {
                queue
                    .push_input(host(&format!("h{i}.example")))
                    .await
                    .expect("open");
            }
            queue.close_input();
        })
    };
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let (mut input, mut discovered) = (0usize, 0usize);
                while let Some(lease) = queue.next().await {
                    match lease.source {
                        Source::Input => {
                            input += 1;
                            // Every tenth input task discovers one new host before it ends.
                            let name = lease.host.as_str().to_owned();
                            if name.trim_start_matches('h').starts_with('7') {
                                queue
                                    .try_push_discovered(host(&format!("found-{name}")))
                                    .expect("room");
                            }
                        }
                        Source::Discovered => discovered += 1,
                        Source::Api => unreachable!("no API items"),
                    }
                    tokio::task::yield_now().await;
                    lease.ack();
                }
                (input, discovered)
            })
        })
        .collect();
    let expected_discoveries = (0..INPUT)
        .filter(|i| i.to_string().starts_with('7'))
        .count();
    let (mut input, mut discovered) = (0, 0);
    for worker in workers {
        let (i, d) = tokio::time::timeout(BOUND * 3, worker)
            .await
            .expect("every worker ends")
            .expect("task ran");
        input += i;
        discovered += d;
    }
    reader.await.expect("reader ran");
    assert_eq!(input, INPUT);
    assert_eq!(discovered, expected_discoveries);
    assert_eq!(queue.depth(), QueueDepth::default());
}

/// Through the [`spyder_queue::WorkQueue`] trait: the hold keeps the memory queue
/// from being done while a task may still discover work, and only the hold does —
/// its finalizer holds nothing of the queue.
#[tokio::test]
async fn the_hold_not_the_finalizer_keeps_the_memory_queue_open() {
    use spyder_queue::{Origin, Source, WorkQueue};
    use tokio_util::task::TaskTracker;

    let memory = MemoryQueue::new(4, 4);
    memory
        .push_input(spyder_model::HostName::from_input("a.example").expect("valid"))
        .await
        .expect("open");
    memory.close_input();
    let queue: &dyn WorkQueue = &memory;
    let tracker = TaskTracker::new();
    let lease = queue.next().await.expect("one lease");
    assert_eq!(lease.origin, Origin::Local(Source::Input));
    let (hold, finalizer) = lease.start(&tracker);
    assert!(queue.pending(), "held: not done");
    drop(hold);
    assert!(!queue.pending(), "hold released: nothing pending");
    assert!(
        queue.next().await.is_none(),
        "done with the finalizer alive"
    );
    assert!(finalizer.is_empty());
    drop(finalizer);
}
