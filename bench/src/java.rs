//! The Java Kafka Streams program (bench/java): built with Maven, run with stated JVM flags.
//! Entry point: [`JavaApp::build`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// JVM flags of every Java run unless `--jvm-flags` says otherwise: a 2 GiB heap cap and the
/// JVM's default collector (G1).
pub(crate) const DEFAULT_JVM_FLAGS: &str = "-Xmx2g";

/// The built program: how to start it.
pub(crate) struct JavaApp {
    classpath: String,
    jvm_flags: Vec<String>,
}

impl JavaApp {
    /// Compiles bench/java and resolves its classpath (Maven downloads the jars into ~/.m2 on
    /// first use). Build output goes to `<root>/target/bench-java`.
    pub(crate) fn build(root: &Path, jvm_flags: &str) -> anyhow::Result<JavaApp> {
        let pom = root.join("bench/java/pom.xml");
        let build = root.join("target/bench-java");
        let cp_file = build.join("classpath.txt");
        eprintln!("building {} with Maven", pom.display());
        let out = Command::new("mvn")
            .args(["-q", "-B", "-Dstyle.color=never", "-f"])
            .arg(&pom)
            .args([
                "compile",
                "dependency:build-classpath",
                "-Dmdep.includeScope=runtime",
            ])
            .arg(format!("-Dmdep.outputFile={}", cp_file.display()))
            .stdin(Stdio::null())
            .output()
            .context("running mvn (Maven 3 and a JDK 17+ are needed for the Java side)")?;
        if !out.status.success() {
            bail!(
                "mvn failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let deps = std::fs::read_to_string(&cp_file)
            .with_context(|| format!("reading {}", cp_file.display()))?;
        let classes: PathBuf = build.join("classes");
        Ok(JavaApp {
            classpath: format!("{}:{}", classes.display(), deps.trim()),
            jvm_flags: jvm_flags.split_whitespace().map(str::to_string).collect(),
        })
    }

    /// `java FLAGS -cp ... streams.bench.StreamsBench ARGS`.
    pub(crate) fn command(&self, args: &[String]) -> Command {
        let mut c = Command::new("java");
        c.args(&self.jvm_flags)
            .arg("-cp")
            .arg(&self.classpath)
            .arg("streams.bench.StreamsBench")
            .args(args);
        c
    }
}
