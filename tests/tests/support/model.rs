//! The reference model of the property test (`model.rs`), shared with the tree fuzz target
//! (`fuzz/fuzz_targets/tree.rs`), which includes this file by path: a small model of Go's
//! semantics (who has ended, with which `err` and `cause`, what `deadline()` and `value()` say,
//! which after-funcs ran), the operations that build and mutate a tree, and [`run_ops`], which
//! applies them to real contexts and checks every context against the model after each step.
//! It reads the live heap through `crate::support::counting_alloc`, so the including crate
//! declares `mod support` at its root.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once};
use std::time::Duration;

use ctx_core::{AfterFunc, CancelHandle, Context, Error};

use crate::support::counting_alloc::LIVE_BYTES;

#[derive(Clone, Debug)]
pub(crate) enum Derive {
    Cancel,
    Timeout(u64),
    TimeoutCause(u64),
    Value(u32),
    WithoutCancel,
}

#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// Derive from entry `parent` (modulo the number of entries; entry 0 is background).
    Derive {
        parent: usize,
        how: Derive,
    },
    /// `first.merge(&second)` of two entries (modulo the number of entries).
    Merge {
        first: usize,
        second: usize,
    },
    Cancel {
        target: usize,
        with_cause: bool,
    },
    /// Drop an entry's context and handle.
    Drop {
        target: usize,
    },
    /// Let the paused clock run this many milliseconds.
    Advance(u64),
    AfterFunc {
        target: usize,
    },
    Stop {
        after: usize,
    },
}

/// A cancellation node of the model (one per `with_cancel`/`with_timeout`/`merge`).
struct Node {
    /// Including the merged nodes of which this one is a parent.
    children: Vec<usize>,
    /// An own deadline (earlier than the parent's), with its cause text.
    own_deadline: Option<(u64, String)>,
    deadline: Option<u64>,
    ended: Option<(Error, String)>,
}

/// A context the test holds, and what the model says it is.
struct Entry {
    real: Option<(Context, Option<CancelHandle>)>,
    node: Option<usize>,
    value: Option<u32>,
}

struct After {
    real: AfterFunc,
    ran: Arc<AtomicBool>,
    node: Option<usize>,
    model_ran: bool,
    model_stopped: bool,
}

#[derive(Default)]
struct Model {
    now: u64,
    nodes: Vec<Node>,
    afters: Vec<After>,
}

impl Model {
    /// Ends `id` and its live subtree: the first end wins.
    fn end(&mut self, id: usize, err: Error, cause: String) {
        let mut stack = vec![(id, err, cause)];
        while let Some((id, err, cause)) = stack.pop() {
            if self.nodes[id].ended.is_some() {
                continue;
            }
            self.nodes[id].ended = Some((err, cause.clone()));
            for after in self.afters.iter_mut() {
                if after.node == Some(id) && !after.model_stopped {
                    after.model_ran = true;
                }
            }
            for &child in &self.nodes[id].children {
                stack.push((child, err, cause.clone()));
            }
        }
    }

    /// Moves the clock to `to`, ending every owner of a deadline on the way, in time order.
    fn advance(&mut self, to: u64) {
        let mut due: Vec<(u64, usize)> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(id, n)| match (&n.own_deadline, &n.ended) {
                (Some((at, _)), None) if *at <= to => Some((*at, id)),
                _ => None,
            })
            .collect();
        // Parents were created before their children: ties go to the ancestor.
        due.sort();
        for (_, id) in due {
            let cause = self.nodes[id].own_deadline.as_ref().unwrap().1.clone();
            self.end(id, Error::DeadlineExceeded, cause);
        }
        self.now = to;
    }
}

/// Runs `ops` on a fresh tree, checking the real contexts against the model after every step,
/// then checks that dropping everything returns the live heap to where it started. Panics at
/// the first difference. Call it on a current-thread runtime with a paused clock, in a binary
/// whose global allocator is `counting_alloc`'s.
pub(crate) async fn run_ops(ops: Vec<Op>) {
    // The runtime's list of deferred wakers is allocated at the first `yield_now` and kept until
    // the runtime ends: made before the baseline, so that the yields at the end do not count it
    // (a run of no operations found it).
    tokio::task::yield_now().await;
    static WARM: Once = Once::new();
    WARM.call_once(warm_up_after_funcs);
    let baseline = LIVE_BYTES.load(Ordering::SeqCst);
    let mut model = Model::default();
    let mut entries = vec![Entry {
        real: Some((Context::background(), None)),
        node: None,
        value: None,
    }];
    for (step, op) in ops.into_iter().enumerate() {
        apply(&mut model, &mut entries, op.clone(), step).await;
        check(&model, &entries, &op, step);
    }
    for after in model.afters.drain(..) {
        drop(after.real);
    }
    drop(entries);
    drop(model);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    // An after-func's thread frees the function's closure just after running it: a check
    // that saw it run may get here first (seen under the fuzzer). And when the run's functions
    // found every after-func thread busy for a while, ctx-core started one more, whose own
    // memory (its handle, its name) lives until it has been idle for ten seconds. What is still
    // live after twelve is kept. A run that leaks nothing is over as soon as the count is back.
    let leaked = || LIVE_BYTES.load(Ordering::SeqCst) - baseline;
    let give_up = std::time::Instant::now() + Duration::from_secs(12);
    while leaked() > 0 && std::time::Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(1));
    }
    let leaked = leaked();
    assert!(
        leaked <= 0,
        "{leaked} bytes still live after everything was dropped"
    );
}

/// Brings ctx-core's after-func threads to the state they keep: the keeper thread started (it
/// lives as long as the process), a worker, and the queue of waiting functions grown to the
/// room it keeps once drained. Otherwise the first run whose functions queue faster than the
/// worker takes them would count the queue's new room as its own live heap: whether it grows
/// depends on the threads' timing, so the same input passed alone and failed in a fuzzing
/// session.
fn warm_up_after_funcs() {
    // One function holds the only worker...
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let started = Arc::new(AtomicBool::new(false));
    let (holder, release) = Context::background().with_cancel();
    let _hold = holder.after_func({
        let (gate, started) = (gate.clone(), started.clone());
        move || {
            started.store(true, Ordering::SeqCst);
            let (open, opened) = &*gate;
            let mut open = open.lock().unwrap();
            while !*open {
                open = opened.wait(open).unwrap();
            }
        }
    });
    release.cancel();
    while !started.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    // ...while a burst of them queues behind it, more than the room the queue keeps.
    const BURST: usize = 200;
    let ran = Arc::new(AtomicUsize::new(0));
    let (burst, end_burst) = Context::background().with_cancel();
    let afters: Vec<AfterFunc> = (0..BURST)
        .map(|_| {
            let ran = ran.clone();
            burst.after_func(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    end_burst.cancel();
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    while ran.load(Ordering::SeqCst) < BURST {
        std::thread::yield_now();
    }
    drop(afters);
}

async fn apply(model: &mut Model, entries: &mut Vec<Entry>, op: Op, step: usize) {
    match op {
        Op::Derive { parent, how } => {
            let parent = parent % entries.len();
            let Some((parent_ctx, _)) = entries[parent].real.as_ref() else {
                return;
            };
            let (parent_node, parent_value) = (entries[parent].node, entries[parent].value);
            let entry = match how {
                Derive::Value(v) => Entry {
                    real: Some((parent_ctx.with_value(v), None)),
                    node: parent_node,
                    value: Some(v),
                },
                Derive::WithoutCancel => Entry {
                    real: Some((parent_ctx.without_cancel(), None)),
                    node: None,
                    value: parent_value,
                },
                Derive::Cancel | Derive::Timeout(_) | Derive::TimeoutCause(_) => {
                    let (real, own) = match how {
                        Derive::Cancel => (parent_ctx.with_cancel(), None),
                        Derive::Timeout(ms) => (
                            parent_ctx.with_timeout(Duration::from_millis(ms)),
                            Some((model.now + ms, Error::DeadlineExceeded.to_string())),
                        ),
                        Derive::TimeoutCause(ms) => {
                            let cause = format!("deadline cause {step}");
                            (
                                parent_ctx
                                    .with_timeout_cause(Duration::from_millis(ms), cause.clone()),
                                Some((model.now + ms, cause)),
                            )
                        }
                        _ => unreachable!(),
                    };
                    let inherited = parent_node.and_then(|p| model.nodes[p].deadline);
                    let own = own.filter(|(at, _)| inherited.is_none_or(|i| *at < i));
                    let id = model.nodes.len();
                    model.nodes.push(Node {
                        children: Vec::new(),
                        deadline: own.as_ref().map(|(at, _)| *at).or(inherited),
                        own_deadline: own.clone(),
                        ended: None,
                    });
                    match parent_node.and_then(|p| model.nodes[p].ended.clone()) {
                        Some((err, cause)) => model.nodes[id].ended = Some((err, cause)),
                        None => {
                            if let Some(p) = parent_node {
                                model.nodes[p].children.push(id);
                            }
                            if let Some((at, cause)) = own
                                && at <= model.now
                            {
                                model.end(id, Error::DeadlineExceeded, cause);
                            }
                        }
                    }
                    Entry {
                        real: Some((real.0, Some(real.1))),
                        node: Some(id),
                        value: parent_value,
                    }
                }
            };
            entries.push(entry);
        }
        Op::Merge { first, second } => {
            let (first, second) = (first % entries.len(), second % entries.len());
            let (Some((first_ctx, _)), Some((second_ctx, _))) =
                (&entries[first].real, &entries[second].real)
            else {
                return;
            };
            let (first_node, second_node) = (entries[first].node, entries[second].node);
            let deadline_of = |node: Option<usize>| node.and_then(|p| model.nodes[p].deadline);
            let (first_deadline, second_deadline) =
                (deadline_of(first_node), deadline_of(second_node));
            // Two different owners' deadlines at the same instant: either may end the merged
            // node first (both are right), which the model cannot say.
            if first_deadline.is_some()
                && first_deadline == second_deadline
                && first_node != second_node
            {
                return;
            }
            let (real, handle) = first_ctx.merge(second_ctx);
            let parents: Vec<usize> = first_node.into_iter().chain(second_node).collect();
            let deadline = match (first_deadline, second_deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let id = model.nodes.len();
            model.nodes.push(Node {
                children: Vec::new(),
                own_deadline: None,
                deadline,
                ended: None,
            });
            // Born ended if a parent has ended: the first parent's end first.
            match parents.iter().find_map(|&p| model.nodes[p].ended.clone()) {
                Some(ended) => model.nodes[id].ended = Some(ended),
                None => {
                    for p in parents {
                        if !model.nodes[p].children.contains(&id) {
                            model.nodes[p].children.push(id);
                        }
                    }
                }
            }
            entries.push(Entry {
                real: Some((real, Some(handle))),
                node: Some(id),
                value: entries[first].value,
            });
        }
        Op::Cancel { target, with_cause } => {
            let target = target % entries.len();
            let (Some((_, Some(handle))), Some(id)) = (&entries[target].real, entries[target].node)
            else {
                return;
            };
            let cause = format!("cancel cause {step}");
            if with_cause {
                handle.cancel_with_cause(cause.clone());
            } else {
                handle.cancel();
            }
            let cause = if with_cause {
                cause
            } else {
                Error::Canceled.to_string()
            };
            model.end(id, Error::Canceled, cause);
        }
        Op::Drop { target } => {
            let target = target % entries.len();
            if target == 0 {
                return;
            }
            if let Some((_, Some(_))) = entries[target].real.take()
                && let Some(id) = entries[target].node
            {
                model.end(id, Error::Canceled, Error::Canceled.to_string());
            }
        }
        Op::Advance(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            // Let the tasks that fire after-funcs on deadlines run.
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            model.advance(model.now + ms);
        }
        Op::AfterFunc { target } => {
            let target = target % entries.len();
            let Some((ctx, _)) = &entries[target].real else {
                return;
            };
            let ran = Arc::new(AtomicBool::new(false));
            let flag = ran.clone();
            let real = ctx.after_func(move || {
                assert!(
                    !flag.swap(true, Ordering::SeqCst),
                    "an after-func ran twice"
                );
            });
            let node = entries[target].node;
            let model_ran = node.is_some_and(|id| model.nodes[id].ended.is_some());
            model.afters.push(After {
                real,
                ran,
                node,
                model_ran,
                model_stopped: false,
            });
        }
        Op::Stop { after } => {
            if model.afters.is_empty() {
                return;
            }
            let index = after % model.afters.len();
            let after = &mut model.afters[index];
            let stopped = after.real.stop();
            let expected = !after.model_ran && !after.model_stopped;
            assert_eq!(stopped, expected, "stop() at step {step}");
            after.model_stopped |= stopped;
        }
    }
}

fn check(model: &Model, entries: &[Entry], op: &Op, step: usize) {
    // Observe every context first: a deadline that passed unobserved ends its owner now, and
    // that runs its after-funcs.
    for entry in entries {
        if let Some((ctx, _)) = &entry.real {
            let _ = ctx.err();
        }
    }
    for (i, entry) in entries.iter().enumerate() {
        let Some((ctx, _)) = &entry.real else {
            continue;
        };
        let node = entry.node.map(|id| &model.nodes[id]);
        let expected = node.and_then(|n| n.ended.clone());
        let context = format!("entry {i} after step {step} ({op:?})");
        assert_eq!(
            ctx.err(),
            expected.as_ref().map(|e| e.0),
            "err of {context}"
        );
        assert_eq!(
            ctx.cause().map(|c| c.to_string()),
            expected.map(|e| e.1),
            "cause of {context}"
        );
        let deadline = ctx.deadline().map(|d| {
            let start = tokio::time::Instant::now() - Duration::from_millis(model.now);
            (d - start).as_millis() as u64
        });
        assert_eq!(
            deadline,
            node.and_then(|n| n.deadline),
            "deadline of {context}"
        );
        assert_eq!(
            ctx.value::<u32>().copied(),
            entry.value,
            "value of {context}"
        );
    }
    for (i, after) in model.afters.iter().enumerate() {
        let expected = after.model_ran && !after.model_stopped;
        if expected {
            // Started by the end, it runs on a thread of its own: wait for it (a function
            // that should not have run and runs late is caught at a later step).
            let give_up = std::time::Instant::now() + Duration::from_secs(10);
            while !after.ran.load(Ordering::SeqCst) && std::time::Instant::now() < give_up {
                std::thread::yield_now();
            }
        }
        assert_eq!(
            after.ran.load(Ordering::SeqCst),
            expected,
            "after-func {i} after step {step} ({op:?})"
        );
    }
}
