//! The open-loop load generator: flags in, [`event_host_bench::loadgen`]
//! does the rest.

use clap::Parser as _;
use event_host_bench::loadgen::{self, Args};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    loadgen::run(Args::parse()).await
}
