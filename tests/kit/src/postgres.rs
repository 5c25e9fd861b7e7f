//! A throwaway PostgreSQL server for tests: `initdb` into a temp dir, a free
//! port on 127.0.0.1, the socket dir inside the temp dir, `wal_level=logical`,
//! SCRAM passwords; stopped and removed on drop. Run as root, the server
//! runs as the `postgres` user (PostgreSQL refuses root).
//!
//! The server binaries are found on PATH, then through `pg_config
//! --bindir`, then in `/usr/lib/postgresql/*/bin`. Without them
//! [`TestPostgres::start`] returns `None` after a loud message, unless
//! `RUNNEL_REQUIRE_POSTGRES=1` (CI), which makes it panic.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The superuser's password in every test server.
pub const PASSWORD: &str = "runnel-test-secret";

/// A running test server.
pub struct TestPostgres {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
pub fn find_bindir() -> Option<PathBuf> {
    let has = |dir: &Path| ["initdb", "pg_ctl", "postgres"].iter().all(|b| dir.join(b).is_file());
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has(&dir) {
                return Some(dir);
            }
        }
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has(&dir) {
            return Some(dir);
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|d| has(d)).collect()
        })
        .unwrap_or_default();
    candidates.sort();
    candidates.pop()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn check(what: &str, out: Output) -> Output {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl TestPostgres {
    /// Starts a server with `wal_level=logical`.
    pub fn start() -> Option<TestPostgres> {
        TestPostgres::start_with(&[])
    }

    /// Starts a server with extra `postgresql.conf` lines.
    pub fn start_with(settings: &[&str]) -> Option<TestPostgres> {
        let Some(bindir) = find_bindir() else {
            if std::env::var("RUNNEL_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!(
                    "PostgreSQL server binaries (initdb, pg_ctl, postgres) are required (RUNNEL_REQUIRE_POSTGRES=1) \
                     but were found neither on PATH, nor by pg_config --bindir, nor in /usr/lib/postgresql/*/bin: \
                     run scripts/setup test"
                );
            }
            eprintln!(
                "\n*** SKIPPING: no PostgreSQL server binaries (initdb, pg_ctl, postgres); run scripts/setup test ***\n"
            );
            return None;
        };
        let as_postgres = is_root();
        let dir = tempfile::Builder::new().prefix("runnel-pg").tempdir().unwrap();
        if as_postgres {
            chown_to_postgres(dir.path());
        }
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if as_postgres {
            chown_to_postgres(&pwfile);
        }
        let data = dir.path().join("data");
        let mut server = TestPostgres { dir, bindir, port: 0, as_postgres };
        check(
            "initdb",
            server
                .command("initdb")
                .args(["-D", data.to_str().unwrap(), "-U", "postgres", "-E", "UTF8", "--no-locale"])
                .args([
                    "--auth-host=scram-sha-256",
                    "--auth-local=trust",
                    "--pwfile",
                    pwfile.to_str().unwrap(),
                ])
                .output()
                .unwrap(),
        );
        let sock = server.dir.path().join("sock");
        std::fs::create_dir(&sock).unwrap();
        if as_postgres {
            chown_to_postgres(&sock);
        }
        let mut conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nwal_level = logical\n\
             max_replication_slots = 20\nmax_wal_senders = 20\nmax_connections = 60\n",
            sock.display()
        );
        for line in settings {
            conf.push_str(line);
            conf.push('\n');
        }
        let conf_path = data.join("postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path).unwrap();
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing).unwrap();
        for attempt in 0..5 {
            server.port = free_port();
            let out = server
                .command("pg_ctl")
                .args(["-D", data.to_str().unwrap(), "-w", "-t", "60", "-l"])
                .arg(server.dir.path().join("log"))
                .args(["-o", &format!("-p {}", server.port), "start"])
                .output()
                .unwrap();
            if out.status.success() {
                return Some(server);
            }
            let log = std::fs::read_to_string(server.dir.path().join("log")).unwrap_or_default();
            assert!(attempt < 4 && log.contains("already in use"), "pg_ctl start failed: {log}");
        }
        unreachable!()
    }

    /// Starts a server with TLS on (`ssl = on`), its certificate signed by
    /// a throwaway CA, for `127.0.0.1` and `pg.runnel.test` only (so
    /// `localhost` does not match its name). Returns the server and the
    /// certificates (`ca.crt`, and `other-ca.crt`, a CA that signed
    /// nothing of this server).
    pub fn start_tls() -> Option<(TestPostgres, TestCerts)> {
        let certs = TestCerts::generate();
        let conf = [
            "ssl = on".to_string(),
            format!("ssl_cert_file = '{}'", certs.dir.path().join("server.crt").display()),
            format!("ssl_key_file = '{}'", certs.dir.path().join("server.key").display()),
        ];
        let conf: Vec<&str> = conf.iter().map(String::as_str).collect();
        let server = TestPostgres::start_with(&conf)?;
        Some((server, certs))
    }

    fn command(&self, binary: &str) -> Command {
        let path = self.bindir.join(binary);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// A PostgreSQL program (`pg_recvlogical`, ...): beside the server
    /// binaries, or beside what they link to (PATH may hold symlinks).
    pub fn tool(&self, name: &str) -> PathBuf {
        let direct = self.bindir.join(name);
        if direct.is_file() {
            return direct;
        }
        let real = std::fs::canonicalize(self.bindir.join("postgres")).unwrap();
        real.parent().unwrap().join(name)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// A client of `database` as the superuser.
    pub async fn client(&self, database: &str) -> tokio_postgres::Client {
        self.client_as("postgres", PASSWORD, database).await
    }

    /// A client of `database` as `user`.
    pub async fn client_as(&self, user: &str, password: &str, database: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user(user)
            .password(password)
            .dbname(database)
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to test postgres as {user}: {e}"));
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// Connector properties for `database` (Debezium's keys).
    pub fn connector_props(&self, database: &str, prefix: &str) -> Vec<(String, String)> {
        [
            ("connector.class", "io.debezium.connector.postgresql.PostgresConnector"),
            ("database.hostname", "127.0.0.1"),
            ("database.user", "postgres"),
            ("database.password", PASSWORD),
            ("topic.prefix", prefix),
            ("plugin.name", "pgoutput"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([
            ("database.port".to_string(), self.port.to_string()),
            ("database.dbname".to_string(), database.to_string()),
        ])
        .collect()
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self
            .command("pg_ctl")
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// Certificates made with the `openssl` command for a TLS test server.
pub struct TestCerts {
    dir: tempfile::TempDir,
}

impl TestCerts {
    fn generate() -> TestCerts {
        let dir = tempfile::Builder::new().prefix("runnel-pg-tls").tempdir().unwrap();
        let run = |args: &[&str]| {
            check(
                &format!("openssl {}", args[0]),
                Command::new("openssl").args(args).current_dir(dir.path()).output().unwrap(),
            );
        };
        let ca_ext = [
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ];
        for name in ["ca", "other-ca"] {
            let (key, crt, subject) =
                (format!("{name}.key"), format!("{name}.crt"), format!("/CN=runnel test {name}"));
            let mut args =
                vec!["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
            args.extend(["-keyout", &key, "-out", &crt, "-days", "2", "-subj", &subject]);
            args.extend(ca_ext);
            run(&args);
        }
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=runnel-test-server",
        ]);
        std::fs::write(
            dir.path().join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:pg.runnel.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(&[
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
        ]);
        // PostgreSQL reads the key as its own user and wants it private.
        let key = dir.path().join("server.key");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        if is_root() {
            chown_to_postgres(dir.path());
        }
        TestCerts { dir }
    }

    /// The CA that signed the server's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A CA that signed nothing of this server.
    pub fn other_ca(&self) -> PathBuf {
        self.dir.path().join("other-ca.crt")
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn chown_to_postgres(path: &Path) {
    check("chown", Command::new("chown").args(["-R", "postgres:postgres"]).arg(path).output().unwrap());
}
