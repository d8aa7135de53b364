//! `[cluster]`: the watchers divided among N independent nodes, the way Prometheus divides its
//! scrape targets with `hashmod`. Every node reads the same file and keeps the watchers it
//! owns; no node talks to another, so there is no cluster protocol to run or to break.
//!
//! A watcher's owner is `u64::from_be_bytes(SHA-256(key)[..8]) % shards`, the key being the
//! lower-case host of its URL (no port) or, with `shard_by = "watcher"`, its name. That rule
//! is public: the README gives it, and changing it would move every watcher.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::{Validator, Watcher};

/// More nodes than this is a typo: each is a daemon with its own store.
const MAX_SHARDS: i64 = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    shards: Option<Spanned<i64>>,
    shard_by: Option<Spanned<String>>,
    shard: Option<Spanned<RawShard>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawShard {
    Index(i64),
    Word(String),
}

/// What a watcher's owner is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardBy {
    /// Every watcher of a host on one node: per-host politeness and proxy rests stay exact.
    Host,
    /// Watchers spread one by one, for a config that mostly watches one host.
    Watcher,
}

impl ShardBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ShardBy::Host => "host",
            ShardBy::Watcher => "watcher",
        }
    }
}

/// How the watchers divide, and which part this process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub shards: u32,
    pub shard_by: ShardBy,
    /// This node's shard, or why it is not known (then every watcher is kept, which `check`
    /// and `test` want, and which commands that own a store refuse).
    pub node: Result<u32, String>,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            shards: 1,
            shard_by: ShardBy::Host,
            node: Ok(0),
        }
    }
}

impl Cluster {
    /// The shard that checks `watcher`.
    pub fn owner(&self, watcher: &Watcher) -> u32 {
        shard_of(&self.key(watcher), self.shards)
    }

    /// What the owner of `watcher` is computed from: its host or its name.
    pub fn key(&self, watcher: &Watcher) -> String {
        match self.shard_by {
            ShardBy::Host => watcher
                .url
                .host_str()
                .unwrap_or_default()
                .to_ascii_lowercase(),
            ShardBy::Watcher => watcher.name.clone(),
        }
    }

    /// Whether this node keeps `watcher`: yes on a single node and where the node is unknown.
    pub(super) fn keeps(&self, watcher: &Watcher) -> bool {
        match self.node {
            Ok(index) => self.shards == 1 || self.owner(watcher) == index,
            Err(_) => true,
        }
    }

    /// This node's index, for a command that owns a store: only its own watchers may go in.
    pub fn own_shard(&self) -> Result<u32, String> {
        self.node.clone().map_err(|why| {
            format!(
                "[cluster] divides the watchers among {} shards and this node's shard is not known: {why}",
                self.shards
            )
        })
    }
}

/// The shard that owns `key` among `shards`: the first 8 bytes of its SHA-256, big-endian,
/// modulo `shards`. Stable across versions, platforms and languages.
pub fn shard_of(key: &str, shards: u32) -> u32 {
    let digest = Sha256::digest(key.as_bytes());
    let head = u64::from_be_bytes(digest[..8].try_into().expect("SHA-256 is 32 bytes"));
    (head % u64::from(shards.max(1))) as u32
}

/// Which node the loading process is.
#[derive(Debug, Clone, Copy)]
pub enum Node<'a> {
    /// This process's own shard: `--shard` (given here), else `PAGEHOOK_SHARD`, else
    /// `[cluster] shard`.
    Own { flag: Option<&'a str> },
    /// Every watcher, whichever node this is: `check --shards` shows them all.
    Every,
    /// The cluster a running daemon started with: a reload keeps it.
    Kept(&'a Cluster),
}

/// The ordinal a StatefulSet gives its pods: `pagehook-3` (or `pagehook-3.pagehook.ns.svc`)
/// is 3.
fn ordinal(hostname: &str) -> Option<u32> {
    let label = hostname.split('.').next()?;
    let (_, digits) = label.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Validator<'_> {
    pub(super) fn cluster(&mut self, raw: Option<Spanned<RawCluster>>, node: Node<'_>) -> Cluster {
        let (span, raw) = match raw {
            Some(raw) => (raw.span(), Some(raw.into_inner())),
            None => (0..0, None),
        };
        let mut cluster = Cluster::default();
        if let Some(raw) = &raw {
            match &raw.shards {
                Some(n) if (1..=MAX_SHARDS).contains(n.get_ref()) => {
                    cluster.shards = *n.get_ref() as u32;
                }
                Some(n) => self.error(
                    n.span(),
                    format!("`shards` must be between 1 and {MAX_SHARDS}"),
                ),
                None => self.error(
                    span.clone(),
                    "[cluster] needs `shards`: how many nodes divide the watchers",
                ),
            }
            if let Some(by) = &raw.shard_by {
                cluster.shard_by = match by.get_ref().as_str() {
                    "host" => ShardBy::Host,
                    "watcher" => ShardBy::Watcher,
                    other => {
                        let msg = format!(
                            "unknown shard_by `{other}`: use \"host\" (the default) or \"watcher\""
                        );
                        self.error(by.span(), msg);
                        ShardBy::Host
                    }
                };
            }
        }
        match node {
            Node::Kept(kept) => {
                if (kept.shards, kept.shard_by) != (cluster.shards, cluster.shard_by) {
                    self.warn(
                        span,
                        "[cluster] changed; it takes effect at the next restart, after the moved watchers are exported and imported (see the README)",
                    );
                }
                return kept.clone();
            }
            Node::Every => {
                cluster.node = Err("every shard's watchers were asked for".into());
                return cluster;
            }
            Node::Own { flag } => {
                let at = raw
                    .as_ref()
                    .and_then(|r| r.shards.as_ref())
                    .map_or(span.clone(), Spanned::span);
                cluster.node = self.node_index(&cluster, raw.as_ref(), flag, at);
            }
        }
        cluster
    }

    /// This node's index from the first place that gives one, or why none does.
    fn node_index(
        &mut self,
        cluster: &Cluster,
        raw: Option<&RawCluster>,
        flag: Option<&str>,
        shards_at: std::ops::Range<usize>,
    ) -> Result<u32, String> {
        let env_value = self.env.var("PAGEHOOK_SHARD").filter(|v| !v.is_empty());
        let (given, from, at) = match (flag, env_value, raw.and_then(|r| r.shard.as_ref())) {
            (Some(flag), _, _) => (flag.to_owned(), "--shard".to_owned(), shards_at.clone()),
            (None, Some(value), _) => (value, "PAGEHOOK_SHARD".to_owned(), shards_at.clone()),
            (None, None, Some(shard)) => match shard.get_ref() {
                RawShard::Index(i) => (i.to_string(), "`shard`".to_owned(), shard.span()),
                RawShard::Word(word) if word == "hostname" => {
                    return self.hostname_index(cluster, shard.span());
                }
                RawShard::Word(word) => {
                    let msg = format!(
                        "invalid shard `{word}`: write the node's index (0 to {}) or \"hostname\" to read it from a StatefulSet pod's name",
                        cluster.shards - 1
                    );
                    self.error(shard.span(), msg.clone());
                    return Err(msg);
                }
            },
            (None, None, None) if raw.is_none() => return Ok(0),
            (None, None, None) => {
                return Err(
                    "give it with --shard I, PAGEHOOK_SHARD=I, or `shard` in [cluster]".into(),
                );
            }
        };
        if raw.is_none() {
            let msg = format!(
                "{from} {given} is given, but the config has no [cluster] table: add `[cluster] shards = N` to divide the watchers"
            );
            self.error(at, msg.clone());
            return Err(msg);
        }
        match given.trim().parse::<u32>() {
            Ok(index) if index < cluster.shards => Ok(index),
            _ => {
                let msg = format!(
                    "{from} {given} is not a shard of this cluster: shards = {} numbers them 0 to {}",
                    cluster.shards,
                    cluster.shards - 1
                );
                self.error(at, msg.clone());
                Err(msg)
            }
        }
    }

    fn hostname_index(
        &mut self,
        cluster: &Cluster,
        at: std::ops::Range<usize>,
    ) -> Result<u32, String> {
        let Some(hostname) = self.env.hostname() else {
            let msg = "shard = \"hostname\", and this machine's hostname cannot be read".to_owned();
            self.warn(at, msg.clone());
            return Err(msg);
        };
        match ordinal(&hostname) {
            Some(index) if index < cluster.shards => Ok(index),
            Some(index) => {
                let msg = format!(
                    "the hostname `{hostname}` names shard {index}, but shards = {} numbers them 0 to {}: scale the StatefulSet and `shards` together",
                    cluster.shards,
                    cluster.shards - 1
                );
                self.error(at, msg.clone());
                Err(msg)
            }
            None => {
                // `check` on a workstation is fine; `run` there refuses with this reason.
                let msg = format!(
                    "shard = \"hostname\", and the hostname `{hostname}` ends in no ordinal (a StatefulSet pod is NAME-0, NAME-1, ...); pass --shard I here"
                );
                self.warn(at, msg.clone());
                Err(msg)
            }
        }
    }
}

/// This machine's hostname, for `shard = "hostname"`.
pub(super) fn hostname() -> Option<String> {
    let name = rustix::system::uname().nodename().to_str().ok()?.to_owned();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;
    use crate::config::Environment;
    use crate::config::testing::{HOOK, SECRET, assert_errors};
    use crate::config::{ConfigError, Loaded, parse_for};

    struct Machine {
        vars: HashMap<&'static str, &'static str>,
        hostname: Option<&'static str>,
    }

    impl Environment for Machine {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).map(|v| v.to_string())
        }
        fn hostname(&self) -> Option<String> {
            self.hostname.map(str::to_owned)
        }
    }

    fn machine(shard_var: Option<&'static str>, hostname: Option<&'static str>) -> Machine {
        let mut vars = HashMap::from([("PAGEHOOK_SECRET", SECRET)]);
        if let Some(v) = shard_var {
            vars.insert("PAGEHOOK_SHARD", v);
        }
        Machine { vars, hostname }
    }

    /// Twelve watchers on twelve hosts, two of them on one host.
    fn file(cluster: &str) -> String {
        let mut text = format!("{cluster}\n{HOOK}[defaults]\nwebhook = \"a\"\n");
        for i in 0..12 {
            let host = if i < 2 {
                "same.example".into()
            } else {
                format!("h{i}.example")
            };
            text.push_str(&format!(
                "[[watchers]]\nname = \"w{i}\"\nurl = \"https://{host}/p/{i}\"\nfields.t = {{ css = \"h1\" }}\n"
            ));
        }
        text
    }

    fn load(text: &str, node: Node<'_>, env: &Machine) -> Result<Loaded, ConfigError> {
        parse_for(text, Path::new("watchers.toml"), env, node)
    }

    fn names(loaded: &Loaded) -> Vec<String> {
        loaded
            .config
            .watchers
            .iter()
            .map(|w| w.name.clone())
            .collect()
    }

    fn errors(text: &str, node: Node<'_>, env: &Machine) -> Vec<String> {
        match load(text, node, env) {
            Ok(_) => panic!("should be rejected:\n{text}"),
            Err(err) => err.errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn the_hash_is_the_documented_one() {
        // Fixed here so that a change of hash, which would move every watcher, cannot pass:
        // u64 of the first 8 bytes of SHA-256("shop.example"), big-endian, mod N.
        let head = u64::from_be_bytes(Sha256::digest(b"shop.example")[..8].try_into().unwrap());
        for n in [1, 2, 3, 7, 10_000] {
            assert_eq!(u64::from(shard_of("shop.example", n)), head % u64::from(n));
        }
        assert_eq!(shard_of("shop.example", 1), 0);
    }

    #[test]
    fn the_nodes_divide_the_watchers_among_them_exactly() {
        let text = file("[cluster]\nshards = 3");
        let env = machine(None, None);
        let mut all = Vec::new();
        for i in 0..3 {
            let flag = i.to_string();
            let loaded = load(&text, Node::Own { flag: Some(&flag) }, &env).unwrap();
            assert_eq!(loaded.config.cluster.node, Ok(i));
            let cluster = &loaded.config.cluster;
            assert!(
                loaded.config.watchers.iter().all(|w| cluster.owner(w) == i),
                "shard {i} keeps only its own"
            );
            all.extend(names(&loaded));
        }
        all.sort();
        let mut every = names(&load(&text, Node::Every, &env).unwrap());
        every.sort();
        assert_eq!(all, every, "together they cover all, each once");
        assert_eq!(every.len(), 12);
    }

    #[test]
    fn shard_by_host_keeps_a_host_together_and_by_watcher_spreads_them() {
        let env = machine(None, None);
        let by_host = load(&file("[cluster]\nshards = 5"), Node::Every, &env).unwrap();
        let cluster = &by_host.config.cluster;
        let owners: Vec<u32> = by_host
            .config
            .watchers
            .iter()
            .map(|w| cluster.owner(w))
            .collect();
        assert_eq!(owners[0], owners[1], "one host, one shard");
        assert_eq!(
            cluster.owner(&by_host.config.watchers[0]),
            shard_of("same.example", 5)
        );

        let text = file("[cluster]\nshards = 5\nshard_by = \"watcher\"");
        let by_name = load(&text, Node::Every, &env).unwrap();
        let cluster = &by_name.config.cluster;
        for w in &by_name.config.watchers {
            assert_eq!(cluster.owner(w), shard_of(&w.name, 5));
        }
    }

    #[test]
    fn the_index_comes_from_the_flag_then_the_variable_then_the_file() {
        let text = file("[cluster]\nshards = 4\nshard = 1");
        let node = |env: &Machine, flag| {
            load(&text, Node::Own { flag }, env)
                .unwrap()
                .config
                .cluster
                .node
        };
        assert_eq!(node(&machine(Some("2"), None), Some("3")), Ok(3));
        assert_eq!(node(&machine(Some("2"), None), None), Ok(2));
        assert_eq!(node(&machine(None, None), None), Ok(1));
        let hostname = file("[cluster]\nshards = 4\nshard = \"hostname\"");
        let pod = machine(None, Some("pagehook-3.pagehook.default.svc.cluster.local"));
        let loaded = load(&hostname, Node::Own { flag: None }, &pod).unwrap();
        assert_eq!(loaded.config.cluster.node, Ok(3));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn an_unknown_index_keeps_every_watcher_and_says_why() {
        let env = machine(None, None);
        let loaded = load(
            &file("[cluster]\nshards = 3"),
            Node::Own { flag: None },
            &env,
        )
        .unwrap();
        assert_eq!(loaded.config.watchers.len(), 12);
        let why = loaded.config.cluster.own_shard().unwrap_err();
        assert!(why.contains("--shard I, PAGEHOOK_SHARD=I"), "{why}");

        let text = file("[cluster]\nshards = 3\nshard = \"hostname\"");
        let laptop = machine(None, Some("devbox"));
        let loaded = load(&text, Node::Own { flag: None }, &laptop).unwrap();
        assert_eq!(loaded.config.watchers.len(), 12);
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        let why = loaded.config.cluster.own_shard().unwrap_err();
        assert!(why.contains("`devbox` ends in no ordinal"), "{why}");

        let single = load(&file(""), Node::Own { flag: None }, &env).unwrap();
        assert_eq!(single.config.cluster.own_shard(), Ok(0));
    }

    #[test]
    fn bad_clusters_and_indexes_are_told_at_their_place() {
        let env = machine(None, None);
        let own = |flag| Node::Own { flag };
        let errs = errors(
            &file("[cluster]\nshards = 0\nshard_by = \"url\""),
            own(None),
            &env,
        );
        assert_errors(
            &errs,
            &[
                "watchers.toml:2:10: `shards` must be between 1 and 10000",
                "watchers.toml:3:12: unknown shard_by `url`",
            ],
        );
        let errs = errors(&file("[cluster]\nshards = 3"), own(Some("3")), &env);
        assert_errors(
            &errs,
            &[
                "watchers.toml:2:10: --shard 3 is not a shard of this cluster: shards = 3 numbers them 0 to 2",
            ],
        );
        let errs = errors(
            &file("[cluster]\nshards = 3"),
            own(None),
            &machine(Some("x"), None),
        );
        assert_errors(
            &errs,
            &["watchers.toml:2:10: PAGEHOOK_SHARD x is not a shard"],
        );
        let errs = errors(&file(""), own(Some("1")), &env);
        assert_errors(
            &errs,
            &["watchers.toml:1:1: --shard 1 is given, but the config has no [cluster] table"],
        );
        let errs = errors(
            &file("[cluster]\nshards = 3\nshard = \"hostname\""),
            own(None),
            &machine(None, Some("pagehook-5")),
        );
        assert_errors(
            &errs,
            &["watchers.toml:3:9: the hostname `pagehook-5` names shard 5"],
        );
        let errs = errors(&file("[cluster]\nshard_by = \"host\""), own(None), &env);
        assert_errors(&errs, &["watchers.toml:1:1: [cluster] needs `shards`"]);
    }

    #[test]
    fn a_reload_keeps_the_cluster_it_started_with() {
        let env = machine(None, None);
        let started = load(
            &file("[cluster]\nshards = 3"),
            Node::Own { flag: Some("1") },
            &env,
        )
        .unwrap();
        let kept = started.config.cluster.clone();
        let reloaded = load(&file("[cluster]\nshards = 4"), Node::Kept(&kept), &env).unwrap();
        assert_eq!(reloaded.config.cluster, kept);
        assert_eq!(names(&reloaded), names(&started));
        assert!(
            reloaded.warnings[0]
                .to_string()
                .contains("[cluster] changed")
        );
    }

    #[test]
    fn ordinals_are_read_from_pod_names_only() {
        assert_eq!(ordinal("pagehook-0"), Some(0));
        assert_eq!(ordinal("web-shard-12.svc.local"), Some(12));
        for name in ["pagehook", "pagehook-", "pagehook-a1", "10.0.0.3", ""] {
            assert_eq!(ordinal(name), None, "{name}");
        }
    }
}
