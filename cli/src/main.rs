//! `tokenledger`: the command-line client of the ledger.
//! Exit codes: 0 success, 1 verification failed or inputs rejected, 2 usage or network error.

mod client;
mod ingest;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "tokenledger",
    version,
    about = "Client of the tokenledger token-issuance ledger"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Verify the log's signed checkpoint, its consistency with the last trusted one, and
    /// optionally one entry's or one ingest receipt's inclusion. Exit 0 verified, 1 failed,
    /// 2 usage or network error.
    Verify(VerifyArgs),
    /// Ship issuance reports (JWTs, NDJSON, IAM audit logs, Keycloak events) to the ledger.
    /// Exit 0 nothing rejected, 1 some inputs rejected, 2 usage, network or server error.
    #[command(long_about = ingest::LONG_ABOUT)]
    Ingest(ingest::IngestArgs),
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// Base URL of the ledger, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "TOKENLEDGER_SERVER")]
    server: String,
    /// The log's verifier key (`name+keyid+base64key`, from GET /v1/log/key), pinned out of band.
    #[arg(long, env = "TOKENLEDGER_LOG_KEY")]
    log_key: String,
    /// File holding the last checkpoint this verifier trusted; created if missing, updated on success.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Also check that entry N is included (needs a credential that may read entries).
    #[arg(long, value_name = "N")]
    entry: Option<u64>,
    /// Also check an ingest receipt: one answer object of POST /v1/issuances (or one line of
    /// `ingest --receipts`), `-` for stdin. Its signature must verify with --log-key and its
    /// entry be included in the checkpoint (public proofs: no credential needed).
    #[arg(long, value_name = "FILE")]
    receipt: Option<PathBuf>,
    /// API credential (`tlk_...`) for reading the entry.
    #[arg(long, env = "TOKENLEDGER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Verify(args) => verify_command(args),
        Command::Ingest(args) => ExitCode::from(ingest::run(args)),
    }
}

fn verify_command(args: VerifyArgs) -> ExitCode {
    let client = client::Client::new(&args.server, args.token);
    let receipt = args
        .receipt
        .as_deref()
        .map(verify::read_receipt)
        .transpose();
    let result = receipt.and_then(|receipt| {
        verify::run(&verify::VerifyRequest {
            client: &client,
            log_key: &args.log_key,
            state: args.state.as_deref(),
            entry: args.entry,
            receipt: receipt.as_ref(),
        })
    });
    match result {
        Ok(done) => {
            if args.json {
                let mut value = serde_json::to_value(&done).expect("serializable");
                value["verified"] = true.into();
                println!("{value}");
            } else {
                println!(
                    "verified: {} at size {} (root {})",
                    done.origin,
                    done.size,
                    done.root.to_base64()
                );
                if let Some(old) = done.consistent_with {
                    println!("consistent with the trusted checkpoint of size {old}");
                }
                if let Some(index) = done.entry {
                    println!("entry {index} is included");
                }
                if let Some(receipt) = &done.receipt {
                    println!(
                        "receipt of entry {} is signed by the log, and the entry is included",
                        receipt.index
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let code = match e {
                verify::VerifyError::Failed(_) => 1,
                verify::VerifyError::Usage(_) => 2,
            };
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"verified": false, "error": e.to_string()})
                );
            }
            eprintln!("tokenledger: {e}");
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
