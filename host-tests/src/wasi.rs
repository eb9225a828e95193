//! The few `wasi_snapshot_preview1` imports a Rust `wasm32-wasip1` filter
//! links, written by hand: smaller than wasmtime-wasi, and deterministic.
//! `random_get` draws from the [`FakeHost`](sticky_core::testing::FakeHost)
//! rng, so tokens are byte-identical to a native run; clocks read the
//! simulated time; stdout/stderr become log lines.

use sticky_core::host::Host as _;
use wasmtime::{Caller, Linker, Result};

use crate::env::enter;
use crate::guest::{self, unsigned};
use crate::state::{HostState, LogLine};

type Ctx<'a> = Caller<'a, HostState>;

/// WASI's "no error".
const ERRNO_SUCCESS: i32 = 0;
/// WASI's `badf`.
const ERRNO_BADF: i32 = 8;
/// WASI's `inval`.
const ERRNO_INVAL: i32 = 28;
/// Largest random_get a filter plausibly needs; more is a bug worth seeing.
const MAX_RANDOM: u32 = 4096;

/// Defines the WASI imports on `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
    const M: &str = "wasi_snapshot_preview1";

    linker.func_wrap(
        M,
        "random_get",
        |mut c: Ctx<'_>, buf: i32, len: i32| -> Result<i32> {
            const CALL: &str = "random_get";
            enter(&mut c, CALL)?;
            if unsigned(len) > MAX_RANDOM {
                return Err(c
                    .data_mut()
                    .violation(CALL, format!("{} random bytes asked for", unsigned(len))));
            }
            let mut bytes = vec![0u8; usize::try_from(unsigned(len)).unwrap_or(0)];
            if !c.data_mut().host.random(&mut bytes) {
                return Ok(ERRNO_INVAL);
            }
            guest::write(&mut c, CALL, "buffer", buf, &bytes)?;
            Ok(ERRNO_SUCCESS)
        },
    )?;

    linker.func_wrap(
        M,
        "clock_time_get",
        |mut c: Ctx<'_>, clock: i32, _precision: i64, ret: i32| -> Result<i32> {
            const CALL: &str = "clock_time_get";
            enter(&mut c, CALL)?;
            // 0 realtime, 1 monotonic: both read the simulated clock.
            if !(0..=1).contains(&clock) {
                return Ok(ERRNO_INVAL);
            }
            let nanos = c.data().now.saturating_mul(1_000_000_000);
            guest::check_slot(&mut c, CALL, "return time slot", ret, 8)?;
            guest::write(&mut c, CALL, "return time slot", ret, &nanos.to_le_bytes())?;
            Ok(ERRNO_SUCCESS)
        },
    )?;

    // No environment variables.
    linker.func_wrap(
        M,
        "environ_sizes_get",
        |mut c: Ctx<'_>, count: i32, size: i32| -> Result<i32> {
            const CALL: &str = "environ_sizes_get";
            enter(&mut c, CALL)?;
            guest::write_u32(&mut c, CALL, "count slot", count, 0)?;
            guest::write_u32(&mut c, CALL, "size slot", size, 0)?;
            Ok(ERRNO_SUCCESS)
        },
    )?;
    linker.func_wrap(
        M,
        "environ_get",
        |mut c: Ctx<'_>, _environ: i32, _buf: i32| -> Result<i32> {
            enter(&mut c, "environ_get")?;
            Ok(ERRNO_SUCCESS)
        },
    )?;

    linker.func_wrap(
        M,
        "fd_write",
        |mut c: Ctx<'_>, fd: i32, iovs: i32, iovs_len: i32, nwritten: i32| -> Result<i32> {
            const CALL: &str = "fd_write";
            enter(&mut c, CALL)?;
            let level = match fd {
                1 => "stdout",
                2 => "stderr",
                _ => return Ok(ERRNO_BADF),
            };
            let entries = unsigned(iovs_len);
            let table_len = entries.checked_mul(8).and_then(|n| i32::try_from(n).ok());
            let Some(table_len) = table_len else {
                return Err(c.data_mut().violation(CALL, format!("{entries} iovecs")));
            };
            let table = guest::read(&mut c, CALL, "iovec array", iovs, table_len)?;
            let mut text = Vec::new();
            for iov in table.chunks_exact(8) {
                let (ptr, len) = iov.split_at(4);
                let word = |b: &[u8]| i32::from_le_bytes(b.try_into().unwrap_or_default());
                text.extend(guest::read(
                    &mut c,
                    CALL,
                    "iovec buffer",
                    word(ptr),
                    word(len),
                )?);
            }
            let written = u32::try_from(text.len()).unwrap_or(u32::MAX);
            c.data_mut().logs.push(LogLine {
                level,
                message: String::from_utf8_lossy(&text).trim_end().to_owned(),
            });
            guest::write_u32(&mut c, CALL, "nwritten slot", nwritten, written)?;
            Ok(ERRNO_SUCCESS)
        },
    )?;

    linker.func_wrap(M, "proc_exit", |mut c: Ctx<'_>, code: i32| -> Result<()> {
        const CALL: &str = "proc_exit";
        enter(&mut c, CALL)?;
        Err(c.data_mut().violation(
            CALL,
            format!("the filter exited the process with code {code}"),
        ))
    })?;

    Ok(())
}
