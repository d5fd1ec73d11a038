//! `fasten lint`: fail when a change to data does not leave an audit event.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use fasten::code::Origin;

/// Arguments of `fasten lint`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Files and directories to lint (Rust, Python, Go, TypeScript, JavaScript).
    #[arg(default_value = ".", value_name = "PATHS")]
    paths: Vec<PathBuf>,
    /// Rules that extend the defaults (default: ./fasten-lint.toml when present).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the report as JSON instead of lines.
    #[arg(long)]
    json: bool,
    /// Also write a SARIF 2.1.0 log for code-scanning tools (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    sarif: Option<PathBuf>,
    /// Also report declared codes that no source emits (needs --codes).
    #[arg(long, requires = "codes")]
    unused: bool,
    /// Code files for --unused (comma separated or repeated).
    #[arg(long, value_name = "CODES.yaml", value_delimiter = ',')]
    codes: Vec<PathBuf>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let default = PathBuf::from("fasten-lint.toml");
    let config_path = args
        .config
        .clone()
        .or_else(|| default.exists().then_some(default));
    let config = match &config_path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            fasten_lint::Config::from_toml(&text)
                .map_err(|e| anyhow::anyhow!("invalid {}: {e}", path.display()))?
        }
        None => fasten_lint::Config::default(),
    };
    let mut declared = Vec::new();
    if args.unused {
        let paths: Vec<PathBuf> = args
            .codes
            .iter()
            .filter(|p| !p.as_os_str().is_empty())
            .cloned()
            .collect();
        let registry = super::load_codes(&paths)?;
        for info in registry.codes() {
            let (path, line) = match info.origin() {
                Origin::File { path, line } => (path.display().to_string(), *line),
                Origin::Code => (String::new(), 1),
            };
            declared.push(fasten_lint::Unused {
                code: info.code().to_owned(),
                path,
                line,
            });
        }
    }
    let report =
        fasten_lint::lint_paths(&args.paths, &config, &declared).map_err(|e| anyhow::anyhow!(e))?;
    let mut out = std::io::stdout().lock();
    if let Some(path) = &args.sarif {
        let sarif = serde_json::to_string_pretty(&report.sarif(env!("CARGO_PKG_VERSION")))?;
        if path.as_os_str() == "-" {
            writeln!(out, "{sarif}")?;
        } else {
            std::fs::write(path, sarif + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report.json())?;
        writeln!(out)?;
    } else if args.sarif.as_deref() != Some(std::path::Path::new("-")) {
        write!(out, "{}", report.human())?;
        eprintln!("fasten lint: {}", report.summary());
    }
    Ok(if report.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
