//! `make fuel-profile`: fuel per function of a sticky.wasm with its name
//! section, on the pinned, new-session and wrap paths; `--save DIR` keeps
//! the profile, `--baseline DIR` prints the difference to a kept one.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sticky_fuel_profile::instrument::instrument;
use sticky_fuel_profile::paths::{Path, measure};
use sticky_fuel_profile::report;

/// Fuel (≈ wasm instructions) per function of sticky.wasm, per stream.
#[derive(Parser)]
#[command(name = "sticky-fuel-profile")]
struct Args {
    /// The module: `make fuel-profile` builds dist/sticky.wasm's code with
    /// its name section kept (a stripped module works, with `f<N>` names).
    wasm: PathBuf,
    /// Paths to profile (default: all): pinned, new-session, wrap-pinned.
    #[arg(long, value_delimiter = ',')]
    path: Vec<String>,
    /// Streams measured per path, after the warm-up.
    #[arg(long, default_value_t = 100)]
    streams: u64,
    /// Rows per table.
    #[arg(long, default_value_t = 25)]
    top: usize,
    /// Keep the profile: one `PATH.tsv` per path in this directory.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Compare with a profile kept with `--save` (e.g. before a change).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Also list who calls the functions whose name contains this.
    #[arg(long)]
    callers: Option<String>,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sticky-fuel-profile: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let paths = if args.path.is_empty() {
        Path::ALL.to_vec()
    } else {
        args.path
            .iter()
            .map(|p| Path::named(p).ok_or_else(|| format!("--path: no path named `{p}`")))
            .collect::<Result<_, _>>()?
    };
    if args.streams == 0 {
        return Err("--streams must be at least 1".into());
    }
    let wasm = std::fs::read(&args.wasm).map_err(|e| format!("{}: {e}", args.wasm.display()))?;
    let instrumented = instrument(&wasm)?;
    let module =
        sticky_host_tests::module::compile(&instrumented.wasm).map_err(|e| e.to_string())?;
    if let Some(dir) = &args.save {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    for path in paths {
        let measured = measure(&module, &instrumented.names, path, args.streams)?;
        let file = format!("{}.tsv", path.name());
        match &args.baseline {
            Some(dir) => {
                let old = report::load(&dir.join(&file))?;
                println!("{}", report::diff(path.name(), &old, &measured, args.top));
            }
            None => println!("{}", report::table(path.name(), &measured, args.top)),
        }
        if let Some(pattern) = &args.callers {
            println!("{}", report::callers(&measured, pattern));
        }
        if let Some(dir) = &args.save {
            report::save(&dir.join(&file), &measured)?;
        }
    }
    Ok(())
}
