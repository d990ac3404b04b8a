//! Shared harness for the end-to-end tests: start moto server (plain, or with the project's
//! Lambda executor, `scripts/moto_lambda.py`) and cargo-lambda's runtime emulator on free
//! loopback ports, find the project's binaries and tools, build SDK configs pointed at the
//! emulator. Every helper fails loudly when something is missing: a test that needs the
//! emulator never skips itself into green.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A tool from the project's venv (`scripts/setup.sh` creates it); panics with the fix if absent.
pub fn venv_tool(name: &str) -> PathBuf {
    let p = workspace().join(".venv/bin").join(name);
    assert!(p.is_file(), "{} is missing: run `bash scripts/setup.sh` first", p.display());
    p
}

/// The shared data sets (`../shared/data` beside the clone).
pub fn shared_data() -> PathBuf {
    let p = workspace().join("../shared/data");
    assert!(p.is_dir(), "{} is missing: the tests read the shared data sets from there", p.display());
    p
}

/// The built `ctguard` binary (the test script builds it before running the tests).
pub fn ctguard_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/it-<hash> → target/<profile>/ctguard
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join("ctguard");
    assert!(p.is_file(), "{} is missing: run `cargo build -p ctguard` first", p.display());
    p
}

/// A `ctguard` command with a clean AWS environment pointed at `endpoint`.
pub fn ctguard(endpoint: Option<&str>) -> Command {
    let mut c = Command::new(ctguard_bin());
    for v in ["AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"] {
        c.env_remove(v);
    }
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null());
    if let Some(e) = endpoint {
        c.env("AWS_ENDPOINT_URL", e);
    }
    c
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

fn wait_for_port(port: u16, child: &mut Child, what: &str, log: &Arc<Mutex<String>>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited with {status} before listening:\n{}",
                log.lock().map(|l| l.clone()).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{what} did not listen on 127.0.0.1:{port} within 60 s:\n{}",
        log.lock().map(|l| l.clone()).unwrap_or_default()
    );
}

/// Appends every line of `stream` to `log` until it ends.
fn pump_lines(stream: impl BufRead, log: &Mutex<String>) {
    for line in stream.lines().map_while(Result::ok) {
        if let Ok(mut l) = log.lock() {
            l.push_str(&line);
            l.push('\n');
        }
    }
}

fn capture(child: &mut Child) -> Arc<Mutex<String>> {
    let log = Arc::new(Mutex::new(String::new()));
    for stream in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let log = Arc::clone(&log);
        std::thread::spawn(move || pump_lines(BufReader::new(stream), &log));
    }
    log
}

/// A moto server on a free loopback port, killed on drop.
pub struct Moto {
    pub port: u16,
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Moto {
    /// Starts `moto_server` from the project's venv; panics (with its output) if it cannot.
    pub fn start() -> Moto {
        Self::launch(false)
    }

    /// Starts the same moto application serving one request at a time. moto's DynamoDB checks
    /// a condition and writes without a lock, so under its default threaded server two
    /// concurrent conditional writes can both succeed — DynamoDB guarantees they cannot. Tests
    /// of that guarantee use this server, where each request is atomic as in DynamoDB.
    pub fn start_serialized() -> Moto {
        Self::launch(true)
    }

    fn launch(serialized: bool) -> Moto {
        let port = free_port();
        const SERIAL: &str = "import sys, moto.server as s; from werkzeug.serving import run_simple; \
            app = s.DomainDispatcherApplication(s.create_backend_app); \
            run_simple(sys.argv[1], int(sys.argv[2]), app, threaded=False, request_handler=s.MotoRequestHandler)";
        let mut cmd = if serialized {
            let mut c = Command::new(venv_tool("python"));
            c.args(["-c", SERIAL, "127.0.0.1", &port.to_string()]).env("MOTO_PORT", port.to_string());
            c
        } else {
            let mut c = Command::new(venv_tool("moto_server"));
            c.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            c
        };
        let mut child = cmd
            .env("MOTO_ALLOW_NONEXISTENT_REGION", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start moto_server");
        let log = capture(&mut child);
        wait_for_port(port, &mut child, "moto_server", &log);
        Moto { port, child, log }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything the server printed so far (for failure messages).
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// An SDK config for the emulator's default account.
    pub fn config(&self, region: &str) -> SdkConfig {
        sdk_config(&self.endpoint(), region, "testing", "testing", None)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An SDK config with static credentials pointed at `endpoint`.
pub fn sdk_config(endpoint: &str, region: &str, key: &str, secret: &str, token: Option<&str>) -> SdkConfig {
    let creds = aws_credential_types::Credentials::new(key, secret, token.map(str::to_string), None, "ctguard-tests");
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(creds))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build()
}

/// One plain HTTP/1.1 request with a JSON body to `endpoint` (`http://host:port`): the
/// emulators' own test APIs (`/_ctguard/…`, `/moto-api/…`). Returns the status and the body.
pub fn http(endpoint: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let addr = endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(660))).expect("read timeout");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send to the emulator");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read the emulator's answer");
    let status = raw.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let answer = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, answer)
}

/// A process killed on drop, with its output captured.
pub struct Proc {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Proc {
    pub fn spawn(mut cmd: Command, what: &str, wait_port: Option<u16>) -> Proc {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let log = capture(&mut child);
        if let Some(p) = wait_port {
            wait_for_port(p, &mut child, what, &log);
        }
        Proc { child, log }
    }
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The deployed function's name; cargo-lambda's emulator routes invocations by binary name, so
/// the emulator project below declares a binary of that name.
pub const FUNCTION_NAME: &str = "ctguard-detector";

/// cargo-lambda's Runtime + Invoke API emulator (`cargo lambda watch --only-lambda-apis`) on a
/// free loopback port, serving the function [`FUNCTION_NAME`]; killed on drop.
pub struct LambdaEmulator {
    pub port: u16,
    _proc: Proc,
    dir: PathBuf,
}

impl LambdaEmulator {
    pub fn start() -> LambdaEmulator {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("ctguard-lambda-emu-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("emulator dir");
        // The emulator validates function names against the binaries of the Cargo project it
        // runs in; this manifest declares the deployed function's name.
        std::fs::write(
            dir.join("Cargo.toml"),
            format!(
                "[package]\nname = \"ctguard-lambda-emulator\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[[bin]]\nname = \"{FUNCTION_NAME}\"\npath = \"main.rs\"\n\n[workspace]\n"
            ),
        )
        .expect("emulator manifest");
        std::fs::write(dir.join("main.rs"), "fn main() {}\n").expect("emulator main");
        let mut cmd = Command::new(venv_tool("cargo-lambda"));
        cmd.args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", &port.to_string()])
            .current_dir(&dir);
        let proc = Proc::spawn(cmd, "cargo lambda watch", Some(port));
        LambdaEmulator { port, _proc: proc, dir }
    }

    /// The Invoke API endpoint (`AWS_ENDPOINT_URL_LAMBDA` for the SDK).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `AWS_LAMBDA_RUNTIME_API` for a function process served by this emulator.
    pub fn runtime_api(&self) -> String {
        format!("http://127.0.0.1:{}/.rt/{FUNCTION_NAME}", self.port)
    }
}

impl Drop for LambdaEmulator {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The shipped `bootstrap`, extracted from the zip that `ctguard package` writes (the very
/// bytes the installer deploys) into a fresh temporary directory.
pub fn shipped_bootstrap() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ctguard-shipped-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let zip = dir.join("bootstrap.zip");
    let out = ctguard(None).arg("package").arg("--out").arg(&zip).output().expect("run ctguard package");
    assert!(out.status.success(), "ctguard package failed: {}", String::from_utf8_lossy(&out.stderr));
    let st = Command::new(venv_tool("python"))
        .args(["-m", "zipfile", "-e"])
        .arg(&zip)
        .arg(&dir)
        .status()
        .expect("python zipfile");
    assert!(st.success(), "cannot extract {}", zip.display());
    let bin = dir.join("bootstrap");
    assert!(bin.is_file(), "the zip has no bootstrap at its root");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    bin
}

/// Starts the shipped bootstrap as the function process of `emu`, talking to AWS at `aws`
/// with `env` (CTGUARD_* settings) and static credentials `creds` (key, secret, token).
pub fn run_function(emu: &LambdaEmulator, aws: &str, creds: (&str, &str, Option<&str>), env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(shipped_bootstrap());
    cmd.env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", emu.runtime_api())
        .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", aws)
        .env("AWS_ACCESS_KEY_ID", creds.0)
        .env("AWS_SECRET_ACCESS_KEY", creds.1)
        .env("RUST_LOG", "info");
    if let Some(t) = creds.2 {
        cmd.env("AWS_SESSION_TOKEN", t);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut p = Proc::spawn(cmd, "bootstrap", None);
    std::thread::sleep(Duration::from_millis(300));
    assert!(p.is_running(), "the bootstrap exited at start:\n{}", p.log());
    p
}

/// moto server with the project's Lambda executor (`scripts/moto_lambda.py`): deployed functions
/// run (EventBridge rule → Lambda, Lambda Invoke) through a Lambda Runtime API, with their own
/// configuration and account. Listens on a loopback port it picks itself (no port race); stops
/// (and stops every function process) when dropped: its stdin closes, it shuts down, and is
/// killed if it has not exited within 10 s. It also stops by itself after an hour.
pub struct Emulator {
    pub endpoint: String,
    child: Child,
    stdin: Option<ChildStdin>,
    log: Arc<Mutex<String>>,
}

impl Emulator {
    pub fn start() -> Emulator {
        let mut child = Command::new(venv_tool("python"))
            .arg(workspace().join("scripts/moto_lambda.py"))
            .args(["--port", "0", "--exit-on-stdin-eof", "--max-lifetime", "3600"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start scripts/moto_lambda.py");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("stdout");
        let out_log = Arc::clone(&log);
        std::thread::spawn(move || {
            // The first line names the endpoint; the rest is log.
            let mut out = BufReader::new(stdout);
            let mut first = String::new();
            let _ = out.read_line(&mut first);
            let _ = tx.send(first);
            pump_lines(out, &out_log);
        });
        let stderr = child.stderr.take().expect("stderr");
        let err_log = Arc::clone(&log);
        std::thread::spawn(move || pump_lines(BufReader::new(stderr), &err_log));
        let stdin = child.stdin.take();
        let first = rx.recv_timeout(Duration::from_secs(60));
        let endpoint = match first.as_deref().ok().and_then(|l| l.strip_prefix("moto_lambda listening on ")) {
            Some(e) => e.trim().to_string(),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "scripts/moto_lambda.py did not start ({first:?}):\n{}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                );
            }
        };
        Emulator { endpoint, child, stdin, log }
    }

    /// Everything the emulator (and the functions it ran) printed so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// An SDK config for the emulator's default account.
    pub fn config(&self, region: &str) -> SdkConfig {
        sdk_config(&self.endpoint, region, "testing", "testing", None)
    }

    /// Delivers CloudTrail records to the default event bus of their (or the given) account and
    /// region, as CloudTrail delivers "AWS API Call via CloudTrail" events (test-only path).
    pub fn deliver_cloudtrail(
        &self,
        records: &[serde_json::Value],
        account: Option<&str>,
        region: Option<&str>,
    ) -> serde_json::Value {
        let body = serde_json::json!({"records": records, "account": account, "region": region});
        let (status, answer) = self.test_api("POST", "/_ctguard/cloudtrail", &body.to_string());
        assert_eq!(status, 200, "CloudTrail delivery failed: {answer}");
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"))
    }

    /// Waits until no asynchronous invocation is queued or running; false on timeout.
    pub fn drain(&self, timeout: Duration) -> bool {
        let body = serde_json::json!({"timeout": timeout.as_secs_f64()}).to_string();
        let (status, answer) = self.test_api("POST", "/_ctguard/drain", &body);
        assert!(status == 200 || status == 504, "drain: {status} {answer}");
        status == 200
    }

    /// Invocations, errors and dead letters per function ARN.
    pub fn stats(&self) -> serde_json::Value {
        let (status, answer) = self.test_api("GET", "/_ctguard/stats", "");
        assert_eq!(status, 200, "stats: {answer}");
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"))
    }

    fn test_api(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        http(&self.endpoint, method, path, body)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Static credentials (key, secret, token) of a role session in `account`: the emulator maps a
/// session's access key to the role's account, so calls made with them act in that account.
pub async fn account_credentials(endpoint: &str, account: &str) -> (String, String, String) {
    let c = aws_sdk_sts::Client::new(&sdk_config(endpoint, "us-east-1", "testing", "testing", None))
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/OrganizationAccountAccessRole"))
        .role_session_name("ctguard-tests")
        .send()
        .await
        .expect("AssumeRole")
        .credentials
        .expect("credentials");
    (c.access_key_id, c.secret_access_key, c.session_token)
}

/// A multi-region trail logging every management event (read and write) in `cfg`'s account:
/// what `ctguard install` requires, and what CloudTrail needs to deliver events to EventBridge.
/// Its bucket is the account's own (`trail-logs-<account>`: bucket names are global).
pub async fn logging_trail(cfg: &SdkConfig) {
    let who = aws_sdk_sts::Client::new(cfg).get_caller_identity().send().await.expect("caller identity");
    let bucket = format!("trail-logs-{}", who.account().expect("account"));
    aws_sdk_s3::Client::new(cfg).create_bucket().bucket(&bucket).send().await.expect("trail bucket");
    let ct = aws_sdk_cloudtrail::Client::new(cfg);
    ct.create_trail().name("audit").s3_bucket_name(&bucket).is_multi_region_trail(true).send().await.expect("trail");
    ct.put_event_selectors()
        .trail_name("audit")
        .event_selectors(
            aws_sdk_cloudtrail::types::EventSelector::builder()
                .read_write_type(aws_sdk_cloudtrail::types::ReadWriteType::All)
                .include_management_events(true)
                .build(),
        )
        .send()
        .await
        .expect("selectors");
    ct.start_logging().name("audit").send().await.expect("start logging");
}

/// A finished command's exit code, stdout and stderr, for failure messages.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `ctguard install --regions …` into the account of `creds` (the emulator's default account
/// when None); panics with the installer's output when it fails.
pub fn install_ctguard(endpoint: &str, creds: Option<&(String, String, String)>, regions: &[&str]) {
    install_ctguard_with(endpoint, creds, regions, &[]);
}

/// [`install_ctguard`] with more flags (`--security-hub`, ...).
pub fn install_ctguard_with(
    endpoint: &str,
    creds: Option<&(String, String, String)>,
    regions: &[&str],
    extra: &[&str],
) {
    let mut c = ctguard(Some(endpoint));
    if let Some((k, s, t)) = creds {
        c.env("AWS_ACCESS_KEY_ID", k).env("AWS_SECRET_ACCESS_KEY", s).env("AWS_SESSION_TOKEN", t);
    }
    // --wait-timeout bounds every stack wait: a stuck emulator fails the test instead of hanging it.
    let out = c
        .args(["install", "--no-auto-deploy", "--wait-timeout", "120", "--regions", &regions.join(",")])
        .args(extra)
        .output()
        .expect("run install");
    assert!(
        out.status.success(),
        "install failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The deployed detector function's environment variables.
pub async fn function_env(cfg: &SdkConfig) -> std::collections::HashMap<String, String> {
    aws_sdk_lambda::Client::new(cfg)
        .get_function_configuration()
        .function_name(FUNCTION_NAME)
        .send()
        .await
        .expect("function")
        .environment
        .and_then(|e| e.variables)
        .unwrap_or_default()
}

/// The detector's record of alert `id` in the state table (`ALERT#<id>`): its alert JSON and
/// the whole item (for its `ttl`).
pub async fn alert_record(
    cfg: &SdkConfig,
    id: &str,
) -> (serde_json::Value, std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) {
    let item = aws_sdk_dynamodb::Client::new(cfg)
        .get_item()
        .table_name("ctguard-state")
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("ALERT#{id}")))
        .send()
        .await
        .expect("get item")
        .item
        .expect("the alert record exists");
    let alert = item.get("alert").and_then(|a| a.as_s().ok()).expect("alert text");
    (serde_json::from_str(alert).expect("alert JSON"), item)
}

/// A queue subscribed to `topic` (raw SNS envelopes, no filter): the alert subscriber of a test.
pub async fn subscribe_queue(cfg: &SdkConfig, topic: &str, name: &str) -> String {
    let sqs = aws_sdk_sqs::Client::new(cfg);
    let url = sqs.create_queue().queue_name(name).send().await.expect("create queue").queue_url.expect("queue url");
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
        .expect("queue ARN");
    aws_sdk_sns::Client::new(cfg)
        .subscribe()
        .topic_arn(topic)
        .protocol("sqs")
        .endpoint(arn)
        .send()
        .await
        .expect("subscribe the queue to the topic");
    url
}

/// Every message on the queue until none arrives for `quiet` (bodies and attributes).
pub async fn receive_all(cfg: &SdkConfig, url: &str, quiet: Duration) -> Vec<aws_sdk_sqs::types::Message> {
    let sqs = aws_sdk_sqs::Client::new(cfg);
    let mut out = Vec::new();
    let mut last = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    while last.elapsed() < quiet && Instant::now() < deadline {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive");
        for m in got.messages() {
            if let Some(h) = m.receipt_handle() {
                sqs.delete_message().queue_url(url).receipt_handle(h).send().await.expect("delete message");
            }
            out.push(m.clone());
            last = Instant::now();
        }
    }
    out
}

/// The alert an SNS → SQS message carries.
pub fn alert_of(m: &aws_sdk_sqs::types::Message) -> serde_json::Value {
    let envelope: serde_json::Value = serde_json::from_str(m.body().unwrap_or("null")).unwrap_or_default();
    envelope["Message"].as_str().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default()
}

/// Puts the installed rule back with another state and, optionally, another pattern: how the
/// tests break or downgrade it.
pub async fn put_detector_rule(
    cfg: &SdkConfig,
    state: aws_sdk_eventbridge::types::RuleState,
    pattern: impl FnOnce(&str) -> String,
) {
    let events = aws_sdk_eventbridge::Client::new(cfg);
    let rule = events.describe_rule().name("ctguard-detector").send().await.expect("the installed rule");
    events
        .put_rule()
        .name("ctguard-detector")
        .event_pattern(pattern(rule.event_pattern().unwrap_or("{}")))
        .state(state)
        .send()
        .await
        .expect("put the rule");
}

/// Runs a short Python script with boto3 (from the project's venv) against the emulator as
/// `creds` in `region`, and returns what it prints as JSON: for the services the tests call
/// once and the Rust SDK is not linked for (Security Hub's SDK crate alone is larger than the
/// rest of the tests). The script gets a `client(service)` function; it prints one JSON value.
pub fn boto3(endpoint: &str, creds: &(String, String, String), region: &str, script: &str) -> serde_json::Value {
    let prelude = "import boto3, json, os\n\
        def client(service):\n    return boto3.client(service, endpoint_url=os.environ['EP'], region_name=os.environ['REGION'],\n        aws_access_key_id=os.environ['K'], aws_secret_access_key=os.environ['S'], aws_session_token=os.environ['T'])\n";
    let out = Command::new(venv_tool("python"))
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .env("EP", endpoint)
        .env("REGION", region)
        .env("K", &creds.0)
        .env("S", &creds.1)
        .env("T", &creds.2)
        .stdin(Stdio::null())
        .output()
        .expect("run python");
    assert!(out.status.success(), "boto3 script failed:\n{script}\n{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("boto3 script printed no JSON ({e}): {text}"))
}
