//! `users-bench`: the load benchmark of the origin ([`users_bench::origin_bench`]).
//!
//! Run it with `scripts/bench.sh` (a release build); `--help` lists the options.

fn main() -> std::process::ExitCode {
    users_bench::origin_bench::main()
}
