//! What a user of the shipped deployment relies on: deploy/kubernetes/'s manifests agree with
//! the watchers.toml they carry and with the binary, and the systemd units with the binary and
//! with each other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use yaml_rust2::{Yaml, YamlLoader};

use crate::fixtures::*;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn text(value: &Yaml) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value:?}"))
}

fn list(value: &Yaml) -> &[Yaml] {
    value
        .as_vec()
        .unwrap_or_else(|| panic!("not a list: {value:?}"))
}

/// The one item of `items` whose `key` is `value`.
fn named<'a>(items: &'a Yaml, key: &str, value: &str) -> &'a Yaml {
    let mut found = list(items)
        .iter()
        .filter(|i| i[key].as_str() == Some(value));
    let item = found
        .next()
        .unwrap_or_else(|| panic!("no {key} {value} in {items:?}"));
    assert!(found.next().is_none(), "two of {key} {value}");
    item
}

/// Every label of `selector` is among `labels`.
fn selects(selector: &Yaml, labels: &Yaml) {
    let selector = selector.as_hash().expect("a selector");
    assert!(!selector.is_empty());
    for (key, value) in selector {
        assert_eq!(&labels[text(key)], value, "label {key:?}");
    }
}

/// deploy/kubernetes/: the kustomization and the manifests it lists, each parsed.
struct Kubernetes {
    kustomization: Yaml,
    manifests: Vec<Yaml>,
    /// The watchers.toml the ConfigMap carries.
    config: toml::Table,
}

impl Kubernetes {
    const DIR: &str = "deploy/kubernetes";

    fn load() -> Kubernetes {
        let parse = |file: &str| {
            let docs = YamlLoader::load_from_str(&read(&format!("{}/{file}", Self::DIR)))
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(!docs.is_empty(), "{file} is empty");
            docs
        };
        let kustomization = parse("kustomization.yaml").remove(0);
        let resources: Vec<&str> = list(&kustomization["resources"]).iter().map(text).collect();
        let mut on_disk: Vec<String> = std::fs::read_dir(repo(Self::DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
            .collect();
        on_disk.sort();
        let mut listed: Vec<&str> = resources.clone();
        listed.sort();
        assert_eq!(listed, on_disk, "kustomization.yaml lists every manifest");

        let manifests: Vec<Yaml> = resources.iter().flat_map(|f| parse(f)).collect();
        for doc in &manifests {
            assert!(doc["apiVersion"].as_str().is_some(), "{doc:?}");
            assert!(doc["metadata"]["name"].as_str().is_some(), "{doc:?}");
            assert!(
                doc["metadata"]["namespace"].is_badvalue(),
                "the manifests are namespace-agnostic: {doc:?}"
            );
        }
        let config = toml::from_str(&read(&format!("{}/watchers.toml", Self::DIR))).unwrap();
        Kubernetes {
            kustomization,
            manifests,
            config,
        }
    }

    fn one(&self, kind: &str) -> &Yaml {
        let mut found = self
            .manifests
            .iter()
            .filter(|m| m["kind"].as_str() == Some(kind));
        let manifest = found.next().unwrap_or_else(|| panic!("no {kind}"));
        assert!(found.next().is_none(), "two of kind {kind}");
        manifest
    }

    fn daemon(&self, key: &str) -> &str {
        self.config["daemon"][key].as_str().unwrap()
    }

    fn admin_port(&self) -> i64 {
        let listen: std::net::SocketAddr = self.daemon("admin_listen").parse().unwrap();
        i64::from(listen.port())
    }

    fn pod(&self) -> &Yaml {
        &self.one("StatefulSet")["spec"]["template"]
    }

    fn container(&self) -> &Yaml {
        named(&self.pod()["spec"]["containers"], "name", "pagehook")
    }
}

#[test]
fn the_statefulset_runs_one_pod_per_shard_of_the_shipped_config() {
    let k = Kubernetes::load();
    let set = k.one("StatefulSet");
    let shards = k.config["cluster"]["shards"].as_integer().unwrap();
    assert_eq!(set["spec"]["replicas"].as_i64(), Some(shards));
    assert_eq!(k.config["cluster"]["shard"].as_str(), Some("hostname"));
    // The example gives every shard something to do (watchers divide by host by default).
    let mut busy = std::collections::BTreeSet::new();
    for watcher in k.config["watchers"].as_array().unwrap() {
        let url = url::Url::parse(watcher["url"].as_str().unwrap()).unwrap();
        busy.insert(pagehook::config::shard_of(
            url.host_str().unwrap(),
            shards as u32,
        ));
    }
    assert_eq!(busy.len() as i64, shards, "shards with watchers: {busy:?}");
    // A pod's hostname is its name, so pod NAME-I is shard I.
    assert_eq!(text(&set["metadata"]["name"]), "pagehook");
    assert_eq!(text(&set["spec"]["podManagementPolicy"]), "Parallel");

    let labels = &k.pod()["metadata"]["labels"];
    selects(&set["spec"]["selector"]["matchLabels"], labels);
    let service = k.one("Service");
    assert_eq!(set["spec"]["serviceName"], service["metadata"]["name"]);
    assert_eq!(text(&service["spec"]["clusterIP"]), "None", "headless");
    selects(&service["spec"]["selector"], labels);
    selects(
        &k.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        labels,
    );

    // The drain must fit in the grace period, or the kubelet kills a shard still delivering.
    let grace = k.pod()["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap();
    assert!(Duration::from_secs(grace as u64) > pagehook::daemon::DRAIN);
    // The image is this version's.
    let image = named(
        &k.kustomization["images"],
        "name",
        text(&k.container()["image"]),
    );
    assert_eq!(text(&image["newTag"]), env!("CARGO_PKG_VERSION"));
}

#[test]
fn the_container_reads_the_configmap_and_the_secret() {
    let k = Kubernetes::load();
    let container = k.container();
    let env = &container["env"];
    let config_path = text(&named(env, "name", "PAGEHOOK_CONFIG")["value"]);
    let args: Vec<&str> = list(&container["args"]).iter().map(text).collect();
    assert_eq!(
        args,
        ["run"],
        "the config comes from PAGEHOOK_CONFIG, not -c"
    );
    // The ConfigMap kustomization.yaml makes of watchers.toml, mounted where that points.
    let volume = named(&k.pod()["spec"]["volumes"], "name", "config");
    let generated = named(
        &k.kustomization["configMapGenerator"],
        "name",
        text(&volume["configMap"]["name"]),
    );
    let files: Vec<&str> = list(&generated["files"]).iter().map(text).collect();
    assert_eq!(files, ["watchers.toml"]);
    let mount = named(&container["volumeMounts"], "name", "config");
    assert_eq!(
        Path::new(text(&mount["mountPath"])).join(files[0]),
        Path::new(config_path)
    );
    // And where the image looks by itself, for `kubectl exec pagehook-0 -- pagehook status`.
    let image_env = format!("ENV PAGEHOOK_CONFIG={config_path}");
    assert!(read("deploy/Dockerfile").lines().any(|l| l == image_env));

    let hooks = k.config["webhooks"].as_table().unwrap();
    assert!(!hooks.is_empty());
    let vars = hooks
        .values()
        .map(|hook| hook["secret_env"].as_str().expect("secret_env"))
        .chain([k.daemon("admin_token_env")]);
    for var in vars {
        let from = &named(env, "name", var)["valueFrom"]["secretKeyRef"];
        let secret = k.one("Secret");
        assert_eq!(from["name"], secret["metadata"]["name"]);
        assert!(
            !secret["stringData"][text(&from["key"])].is_badvalue(),
            "the Secret holds key {:?}",
            from["key"]
        );
    }
}

#[test]
fn probes_and_scrapes_reach_admin_listen_and_the_volume_holds_state_dir() {
    let k = Kubernetes::load();
    let container = k.container();
    let port = k.admin_port();
    let ports = list(&container["ports"]);
    let by_name = |name: &Yaml| -> i64 {
        match name.as_i64() {
            Some(number) => number,
            None => ports
                .iter()
                .find(|p| p["name"] == *name)
                .and_then(|p| p["containerPort"].as_i64())
                .unwrap_or_else(|| panic!("no container port {name:?}")),
        }
    };
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let get = &container[probe]["httpGet"];
        assert_eq!(text(&get["path"]), "/healthz", "{probe}");
        assert_eq!(by_name(&get["port"]), port, "{probe}");
    }
    let annotations = &k.pod()["metadata"]["annotations"];
    assert_eq!(text(&annotations["prometheus.io/scrape"]), "true");
    assert_eq!(text(&annotations["prometheus.io/port"]), port.to_string());
    assert_eq!(text(&annotations["prometheus.io/path"]), "/metrics");
    let service_port = &list(&k.one("Service")["spec"]["ports"])[0];
    assert_eq!(by_name(&service_port["targetPort"]), port);

    let set = k.one("StatefulSet");
    let claim = &list(&set["spec"]["volumeClaimTemplates"])[0];
    let mount = named(
        &container["volumeMounts"],
        "name",
        text(&claim["metadata"]["name"]),
    );
    assert!(
        Path::new(k.daemon("state_dir")).starts_with(text(&mount["mountPath"])),
        "state_dir is on the pod's volume"
    );
}

#[test]
fn the_pod_is_sandboxed_like_the_systemd_unit() {
    let k = Kubernetes::load();
    let pod = &k.pod()["spec"];
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));
    let context = &pod["securityContext"];
    assert_eq!(context["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(text(&context["seccompProfile"]["type"]), "RuntimeDefault");
    let user = context["runAsUser"].as_i64().unwrap();
    let dockerfile = read("deploy/Dockerfile");
    assert!(
        dockerfile
            .lines()
            .any(|l| l == format!("USER {user}:{user}")),
        "the image runs as the pod's user {user}"
    );
    let container = &k.container()["securityContext"];
    assert_eq!(container["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(container["readOnlyRootFilesystem"].as_bool(), Some(true));
    let dropped: Vec<&str> = list(&container["capabilities"]["drop"])
        .iter()
        .map(text)
        .collect();
    assert_eq!(dropped, ["ALL"]);
    let limits = &k.container()["resources"]["limits"];
    assert!(limits["memory"].as_str().is_some(), "a memory limit");
}

#[tokio::test]
async fn the_shipped_config_checks_on_a_shard_and_the_placeholder_secrets_do_not() {
    let k = Kubernetes::load();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("watchers.toml");
    std::fs::write(&config, read("deploy/kubernetes/watchers.toml")).unwrap();
    let check = |secret: &str, token: &str| {
        let mut command = tokio::process::Command::new(binary());
        command
            .args(["--shard", "2", "check", "-c"])
            .arg(&config)
            .env_remove("PAGEHOOK_CONFIG")
            .env_remove("PAGEHOOK_SHARD")
            .env_remove("PAGEHOOK_ADMIN_LISTEN")
            .env("PAGEHOOK_SECRET", secret)
            .env("PAGEHOOK_ADMIN_TOKEN", token);
        async move { Output::from(command.output().await.unwrap()) }
    };
    let token = "0123456789abcdef0123456789abcdef";
    let out = check(SECRET, token).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("warning"), "{out:?}");

    // Applied as shipped, the shards stop at their config: they never sign with a known secret,
    // nor serve /metrics to anyone.
    let secret = k.one("Secret");
    let placeholder = text(&secret["stringData"]["webhook-secret"]);
    let out = check(placeholder, token).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("secret must start with"), "{out:?}");
    let placeholder = text(&secret["stringData"]["admin-token"]);
    let out = check(SECRET, placeholder).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("the admin token is empty"), "{out:?}");
}

/// A unit file's settings by section and key, each key's values in order.
fn unit_settings(text: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut settings: BTreeMap<_, Vec<_>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("{line}"));
        settings
            .entry((section.clone(), key.to_owned()))
            .or_default()
            .push(value.to_owned());
    }
    settings
}

/// The rating `systemd-analyze security` gives `unit`, or None where it is not installed.
fn exposure(unit: &Path) -> Option<f64> {
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit)
        .output()
        .ok()?;
    let report = String::from_utf8_lossy(&out.stdout);
    let rating = report
        .lines()
        .find_map(|l| l.split("Overall exposure level for ").nth(1))
        .and_then(|rest| rest.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no rating in:\n{report}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    Some(rating)
}

#[test]
fn the_unit_file_matches_the_binary_and_passes_systemd_analyze() {
    let text = read("systemd/pagehook.service");
    for line in [
        "Type=notify".to_owned(),
        format!(
            "RestartPreventExitStatus={}",
            pagehook::commands::EXIT_CONFIG
        ),
        "ExecStart=/usr/local/bin/pagehook -c /etc/pagehook/watchers.toml run".to_owned(),
        "ExecReload=/bin/kill -HUP $MAINPID".to_owned(),
        "StateDirectory=pagehook".to_owned(),
        "LoadCredential=webhook-secret:/etc/pagehook/webhook-secret".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing");
    }
    // The drain must fit in the stop timeout, or systemd kills a daemon still delivering.
    let stop_timeout: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim_end_matches('s').parse().ok())
        .expect("TimeoutStopSec=Ns");
    assert!(Duration::from_secs(stop_timeout) > pagehook::daemon::DRAIN);

    for unit in ["systemd/pagehook.service", "systemd/pagehook@.service"] {
        match exposure(&repo(unit)) {
            Some(rating) => assert!(rating <= 2.0, "{unit}: exposure {rating}"),
            None => {
                eprintln!("systemd-analyze is not installed; the exposure rating was not checked")
            }
        }
    }
}

#[test]
fn the_template_unit_is_the_plain_unit_but_for_its_shard() {
    let plain = unit_settings(&read("systemd/pagehook.service"));
    let mut template = unit_settings(&read("systemd/pagehook@.service"));
    let service = |key: &str| ("Service".to_owned(), key.to_owned());
    let one = |settings: &BTreeMap<_, Vec<String>>, key: (String, String)| {
        let values = &settings[&key];
        assert_eq!(values.len(), 1, "{key:?}: {values:?}");
        values[0].clone()
    };

    // The documented differences, each taken out before the rest is compared.
    let description = ("Unit".to_owned(), "Description".to_owned());
    assert_eq!(
        one(&template, description.clone()),
        one(&plain, description.clone()).replacen("pagehook", "pagehook shard %i", 1)
    );
    let exec = one(&plain, service("ExecStart"));
    let config = exec
        .strip_prefix("/usr/local/bin/pagehook -c ")
        .and_then(|rest| rest.strip_suffix(" run"))
        .expect("ExecStart=pagehook -c CONFIG run");
    assert_eq!(
        one(&template, service("ExecStart")),
        "/usr/local/bin/pagehook --shard %i run"
    );
    assert_eq!(
        one(&template, service("Environment")),
        format!("PAGEHOOK_CONFIG={config}"),
        "every instance reads the plain unit's config, a drop-in can name another"
    );
    assert_eq!(
        one(&template, service("StateDirectory")),
        format!("{}/%i", one(&plain, service("StateDirectory"))),
        "each instance has its own store"
    );
    assert!(!plain.contains_key(&service("Environment")));
    let mut plain = plain;
    for key in [
        description,
        service("ExecStart"),
        service("Environment"),
        service("StateDirectory"),
    ] {
        plain.remove(&key);
        template.remove(&key);
    }
    for (key, values) in &plain {
        assert_eq!(template.get(key), Some(values), "{key:?}");
    }
    for key in template.keys() {
        assert!(plain.contains_key(key), "{key:?} is only in the template");
    }
}
