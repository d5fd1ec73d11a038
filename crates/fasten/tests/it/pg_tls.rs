//! PostgreSQL over TLS (issue #12 item 6), against a second cluster this
//! test starts itself: `initdb` into a temporary directory, a CA and a
//! server certificate for `localhost` made with the `openssl` command,
//! `ssl=on` on a free port, and a `pg_hba.conf` with `hostssl` lines only,
//! so the server refuses plaintext. The cluster is stopped and its
//! directory removed when the test ends, failed or not.
//!
//! Under `CI` a cluster that cannot be started fails the test; elsewhere
//! the test prints why and returns.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use fasten::{AuditQuery, Config, Dsn, Event, Reader};
use serde_json::json;

use super::support::registry;

/// The password in every DSN below: the cluster trusts local connections
/// and never asks for it, and no error may show it.
const PASSWORD: &str = "s3cr3t-pw";

/// A PostgreSQL cluster of the test's own; stopped and removed on drop.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    /// Owns the directory: dropped (removed) after the server stops.
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    /// Starts the cluster, or says why it cannot.
    fn start() -> Result<Self, String> {
        let bin = pg_bin().ok_or("no PostgreSQL binaries (initdb, pg_ctl) found")?;
        // initdb refuses to run as root: run the server as `postgres` then.
        let as_postgres = run(Command::new("id").arg("-u"))
            .map(|out| out.trim() == "0")
            .unwrap_or(false);
        let dir = tempfile::Builder::new()
            .prefix("fasten-pg-tls-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let data = dir.path().join("data");
        let mut cluster = Self {
            bin,
            data,
            dir,
            port: 0,
            as_postgres,
        };
        cluster.init()?;
        Ok(cluster)
    }

    fn init(&mut self) -> Result<(), String> {
        let dir = self.dir.path().to_owned();
        certificates(&dir)?;
        if self.as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir))?;
        }
        self.pg(
            "initdb",
            &[
                "-D",
                &self.data.display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        self.port = free_port()?;
        let conf = format!(
            "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nfsync = off\nmax_connections = 20\nshared_buffers = 16MB\n",
            self.port,
            dir.display(),
            dir.join("server.crt").display(),
            dir.join("server.key").display(),
        );
        append(&self.data.join("postgresql.conf"), &conf)?;
        // TLS only over TCP: a plaintext connection finds no line.
        std::fs::write(
            self.data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .map_err(|e| format!("pg_hba.conf: {e}"))?;
        let log = dir.join("server.log").display().to_string();
        let data = self.data.display().to_string();
        self.pg(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-w", "-t", "30", "start"],
        )
        .map_err(|e| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            format!("{e}\nserver log:\n{log}")
        })?;
        Ok(())
    }

    /// Runs one of the cluster's programs, as `postgres` when the test
    /// runs as root.
    fn pg(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        cmd.args(args).current_dir(self.dir.path());
        run(&mut cmd)
    }

    /// Turns TLS off and lets plaintext connections in (a reload).
    fn without_tls(&self) -> Result<(), String> {
        append(&self.data.join("postgresql.conf"), "ssl = off\n")?;
        std::fs::write(
            self.data.join("pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.1/32 trust\n",
        )
        .map_err(|e| format!("pg_hba.conf: {e}"))?;
        let data = self.data.display().to_string();
        self.pg("pg_ctl", &["-D", &data, "reload"]).map(drop)
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    fn other_ca(&self) -> PathBuf {
        self.dir.path().join("other-ca.crt")
    }

    /// A DSN for the cluster: `host` is what TLS checks the certificate
    /// against; the address is always 127.0.0.1.
    fn dsn(&self, host: &str, query: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@{host}:{}/postgres?hostaddr=127.0.0.1&table=tls_audit&{query}",
            self.port
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        if self.port != 0
            && let Err(e) = self.pg("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
        {
            eprintln!("pg_tls: stopping the test cluster: {e}");
        }
        // `dir` is removed after this, with the data directory in it.
    }
}

fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out: Output = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// `ca.crt` (which signs `server.crt`, valid for `localhost` only) and an
/// unrelated `other-ca.crt`, with EC keys (fast to make).
fn certificates(dir: &Path) -> Result<(), String> {
    let openssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(dir));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for (name, cn) in [("ca", "fasten test CA"), ("other-ca", "fasten other CA")] {
        let key = format!("{name}.key");
        let crt = format!("{name}.crt");
        let subj = format!("/CN={cn}");
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        args.extend([
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "2",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&args)?;
    }
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&args)?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| format!("server.ext: {e}"))?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ])?;
    // PostgreSQL refuses a key others can read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .map_err(|e| format!("chmod server.key: {e}"))?;
    }
    Ok(())
}

fn parse(s: &str) -> Dsn {
    Dsn::parse("FASTEN_AUDIT_DSN", s).unwrap()
}

/// The connection error `verify` (a read-only open) gives for `dsn`, with
/// the password checked absent.
fn refusal(dsn: &str) -> String {
    let err = fasten::verify(&parse(dsn)).expect_err(dsn).to_string();
    assert!(!err.contains(PASSWORD), "the password shows: {err}");
    err
}

#[test]
fn issue_12_postgres_over_tls() -> fasten::Result<()> {
    let cluster = match Cluster::start() {
        Ok(c) => c,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but the TLS test cluster cannot start: {why}")
        }
        Err(why) => {
            eprintln!(
                "SKIPPED issue_12_postgres_over_tls: cannot start a PostgreSQL cluster: {why}"
            );
            return Ok(());
        }
    };
    let ca = cluster.ca().display().to_string();
    let other = cluster.other_ca().display().to_string();

    // verify-full with the right CA, end to end: init (creates the table),
    // emit, flush, read back, verify.
    let full = parse(&cluster.dsn(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ));
    let fasten = Config::new()
        .service_id("it-tls")
        .node_id("node-tls")
        .audit_dsn(full.clone())
        .registry(registry())
        .build()?;
    for i in 0..20 {
        fasten.emit(
            Event::new("USER_CREATED")
                .target(format!("u-{i}"))
                .detail(json!({ "i": i })),
        )?;
    }
    fasten.flush(Duration::from_secs(20))?;
    drop(fasten);
    let page = Reader::new(full.clone()).audit(&AuditQuery::new(100))?;
    assert_eq!(page.rows.len(), 20);
    let report = fasten::verify(&full)?;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.nodes[0].rows, 20);

    // verify-ca checks the chain but not the name: 127.0.0.1 is not in
    // the certificate, and it still connects.
    let ca_only = parse(&cluster.dsn("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")));
    assert!(fasten::verify(&ca_only)?.ok);
    // require encrypts without checking anything.
    let require = parse(&cluster.dsn("127.0.0.1", "sslmode=require"));
    assert!(fasten::verify(&require)?.ok);
    // The default (prefer) takes TLS when it is offered, as libpq does.
    assert!(fasten::verify(&parse(&cluster.dsn("127.0.0.1", "")))?.ok);

    // A CA that did not sign the server's certificate.
    let err = refusal(&cluster.dsn(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={other}"),
    ));
    assert!(
        err.contains(&format!("the server's certificate is not trusted: no CA in sslrootcert={other} signed it (sslmode=verify-full: the chain must end at a trusted CA): set sslrootcert to the CA that signed the server's certificate")),
        "{err}"
    );
    // libpq: require with a root file checks the chain like verify-ca.
    let err = refusal(&cluster.dsn("localhost", &format!("sslmode=require&sslrootcert={other}")));
    assert!(
        err.contains(
            "(sslmode=require with sslrootcert acts as verify-ca: the chain must end at a trusted CA)"
        ),
        "{err}"
    );
    // The writer gives the same refusal at init.
    let err = Config::new()
        .service_id("it-tls")
        .node_id("node-tls")
        .audit_dsn(parse(&cluster.dsn(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={other}"),
        )))
        .registry(registry())
        .build()
        .expect_err("a wrong CA must fail init")
        .to_string();
    assert!(err.contains("is not trusted"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");

    // verify-full checks the name: the certificate names localhost only.
    let err = refusal(&cluster.dsn(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ));
    assert!(
        err.contains(r#"the server's certificate is not valid for host "127.0.0.1" (sslmode=verify-full: the certificate must name the host): connect by a name the certificate holds, or use sslmode=verify-ca"#),
        "{err}"
    );

    // Plaintext: the server's pg_hba.conf has no line for it.
    let err = refusal(&cluster.dsn("localhost", "sslmode=disable"));
    assert!(
        err.contains("(sslmode=disable): the server refuses connections without TLS and sslmode=disable forbids TLS: use sslmode=verify-full with sslrootcert (or require)"),
        "{err}"
    );

    // A root file that is not there.
    let err = refusal(&cluster.dsn(
        "localhost",
        "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    ));
    assert!(
        err.contains("sslrootcert=/nonexistent/ca.pem cannot be read"),
        "{err}"
    );

    // The same server without TLS: prefer falls back to plaintext, require
    // is refused.
    cluster.without_tls().unwrap();
    let prefer = parse(&cluster.dsn("localhost", "sslmode=prefer"));
    // A reload takes effect shortly after pg_ctl returns.
    super::support::wait_until("the reload to take effect", || {
        fasten::verify(&prefer).is_ok()
    });
    let err = refusal(&cluster.dsn("localhost", "sslmode=require"));
    assert!(
        err.contains("(sslmode=require): the server does not offer TLS, and sslmode=require requires it: enable ssl on the server, or use sslmode=prefer on a trusted network"),
        "{err}"
    );
    Ok(())
}
