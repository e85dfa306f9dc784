//! `seqnet-prover`: proves seqnet batches. The proving back ends arrive with
//! the prover issue; until then this binary only reports its version.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "seqnet-prover",
    version,
    about = "seqnet prover (proving arrives with the prover issue)"
)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    println!(
        "seqnet-prover {}: no proving back end yet",
        env!("CARGO_PKG_VERSION")
    );
}
