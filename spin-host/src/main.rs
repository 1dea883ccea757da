//! `users-spin-host`: serve a Spin component locally (test/dev only).
//!
//! ```text
//! users-spin-host --wasm PATH [--listen 127.0.0.1:3000] [--var name=value]... [--store label]...
//! ```
//! Variables also come from `SPIN_VARIABLE_<NAME>` environment variables, as
//! with Spin's environment provider (`SPIN_VARIABLE_ORIGIN_URL` → `origin_url`);
//! `--var` wins over the environment. Prints `listening on http://ADDR` once
//! bound and serves until SIGINT or SIGTERM.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;

use users_spin_host::HostConfig;

const USAGE: &str = "usage: users-spin-host --wasm PATH [--listen 127.0.0.1:3000] \
                     [--var name=value]... [--store label]...\n\
                     Variables are also read from SPIN_VARIABLE_<NAME> environment variables.";
const ENV_PREFIX: &str = "SPIN_VARIABLE_";

#[tokio::main]
async fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1), std::env::vars_os()) {
        Ok(Some(config)) => config,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("users-spin-host: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let host = match users_spin_host::start(config).await {
        Ok(host) => host,
        Err(err) => {
            eprintln!("users-spin-host: {err:?}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", host.url());
    if let Err(err) = shutdown_signal().await {
        eprintln!("users-spin-host: waiting for signals: {err}");
    }
    host.shutdown().await;
    ExitCode::SUCCESS
}

/// `Ok(None)` for `--help`.
fn parse_args(
    mut args: impl Iterator<Item = String>,
    env: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<Option<HostConfig>, String> {
    let mut wasm = None;
    let mut listen: SocketAddr = ([127, 0, 0, 1], 3000).into();
    let mut stores = Vec::new();
    let mut variables = BTreeMap::new();
    for (name, value) in env {
        let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
            continue;
        };
        if let Some(suffix) = name.strip_prefix(ENV_PREFIX) {
            variables.insert(suffix.to_ascii_lowercase(), value.to_owned());
        }
    }
    while let Some(arg) = args.next() {
        // Both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        if flag == "--help" || flag == "-h" {
            return Ok(None);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--wasm" => wasm = Some(value()?),
            "--listen" => {
                let v = value()?;
                listen = v
                    .parse()
                    .map_err(|_| format!("--listen {v:?} is not ip:port"))?;
            }
            "--store" => stores.push(value()?),
            "--var" => {
                let v = value()?;
                let (name, val) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--var {v:?} is not name=value"))?;
                variables.insert(name.to_owned(), val.to_owned());
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let wasm = wasm.ok_or("--wasm PATH is required")?;
    Ok(Some(HostConfig {
        wasm: wasm.into(),
        listen,
        variables: variables.into_iter().collect(),
        stores,
    }))
}

async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = term.recv() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Option<HostConfig>, String> {
        parse_args(
            args.iter().map(|s| (*s).to_owned()),
            env.iter().map(|(k, v)| ((*k).into(), (*v).into())),
        )
    }

    #[test]
    fn flags_and_env() {
        let config = parse(
            &[
                "--wasm",
                "x.wasm",
                "--listen=0.0.0.0:8000",
                "--var",
                "a=1=2",
                "--store",
                "default",
            ],
            &[
                ("SPIN_VARIABLE_ORIGIN_URL", "http://o"),
                ("SPIN_VARIABLE_A", "env"),
                ("PATH", "/bin"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(config.wasm.to_str(), Some("x.wasm"));
        assert_eq!(config.listen.to_string(), "0.0.0.0:8000");
        assert_eq!(config.stores, ["default"]);
        assert_eq!(
            config.variables,
            [
                ("a".into(), "1=2".into()),
                ("origin_url".into(), "http://o".into())
            ]
        );
    }

    #[test]
    fn errors() {
        assert!(parse(&[], &[]).is_err());
        assert!(parse(&["--wasm"], &[]).is_err());
        assert!(parse(&["--wasm", "x", "--var", "novalue"], &[]).is_err());
        assert!(parse(&["--wasm", "x", "--bogus"], &[]).is_err());
        assert!(parse(&["--help"], &[]).unwrap().is_none());
    }
}
