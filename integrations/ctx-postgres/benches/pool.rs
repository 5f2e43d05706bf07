//! `SELECT 1` through `ctx_postgres::Pool` beside plain deadpool-postgres on the same server,
//! each with its own pool of one connection: borrow, query, return. Rounds interleave the two
//! so that the machine's load falls on both alike; the median of each is reported, with the
//! ratio. Needs `DATABASE_URL`; prints `skipped` without it.
//!
//! ```text
//! DATABASE_URL=postgres://... cargo bench -p ctx-postgres --features deadpool --bench pool
//! ```

use std::time::{Duration, Instant};

use ctx_core::Context;
use ctx_postgres::deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
use ctx_postgres::{Pool, deadpool_postgres};
use tokio_postgres::NoTls;

const ROUNDS: usize = 9;
const QUERIES: u32 = 2_000;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        println!("skipped: DATABASE_URL not set");
        return;
    };
    let config: tokio_postgres::Config = url.parse().expect("DATABASE_URL");
    let ours = Pool::new(config.clone(), NoTls, 1).await;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let plain = deadpool_postgres::Pool::builder(manager)
        .max_size(1)
        .build()
        .expect("a pool");
    let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(3600));

    let (mut ours_ns, mut plain_ns) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..QUERIES {
            let client = ours.get(&ctx).await.expect("a connection");
            let row = client
                .query_one(&ctx, "SELECT 1", &[])
                .await
                .expect("a row");
            std::hint::black_box(row.get::<_, i32>(0));
        }
        ours_ns.push(start.elapsed().as_nanos() as f64 / f64::from(QUERIES));

        let start = Instant::now();
        for _ in 0..QUERIES {
            let client = plain.get().await.expect("a connection");
            let row = client.query_one("SELECT 1", &[]).await.expect("a row");
            std::hint::black_box(row.get::<_, i32>(0));
        }
        plain_ns.push(start.elapsed().as_nanos() as f64 / f64::from(QUERIES));
    }
    let (ours, plain) = (median(ours_ns), median(plain_ns));
    for (name, ns) in [("ctx-postgres", ours), ("deadpool", plain)] {
        println!("{{\"name\":\"pool_select_1\",\"impl\":\"{name}\",\"ns_per_op\":{ns:.0}}}");
    }
    println!("ctx-postgres / deadpool: {:.3}", ours / plain);
}
