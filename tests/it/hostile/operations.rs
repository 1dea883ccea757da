//! The operations the sweep covers, read from the origin's own `/openapi.json` (plus the routes
//! it does not describe), and every string parameter of each: path, query and declared header
//! parameters, JSON and form fields, and the headers every route reads.

use std::fmt;

use reqwest::Method;
use serde_json::Value;

/// Where a parameter goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Place {
    Path(String),
    Query(String),
    Header(String),
    Json(String),
    Form(String),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(n) => write!(f, "path {n}"),
            Self::Query(n) => write!(f, "query {n}"),
            Self::Header(n) => write!(f, "header {n}"),
            Self::Json(n) => write!(f, "JSON field {n}"),
            Self::Form(n) => write!(f, "form field {n}"),
        }
    }
}

/// One operation and its string parameters.
#[derive(Debug, Clone)]
pub(super) struct Operation {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) places: Vec<Place>,
    /// The JSON body's fields and whether each is a list of strings.
    pub(super) json_fields: Vec<(String, bool)>,
    pub(super) json_media: Option<String>,
    pub(super) form_fields: Vec<String>,
}

/// The headers every route reads (or must ignore safely), beyond those a route declares.
pub(super) const COMMON_HEADERS: [(&str, &str); 6] = [
    ("authorization", "Bearer "),
    ("x-request-id", ""),
    ("x-forwarded-for", ""),
    ("user-agent", ""),
    ("content-type", "application/json; x="),
    ("accept", ""),
];

/// Routes the document does not describe, each with its string parameters.
fn undocumented() -> Vec<Operation> {
    let op = |method: Method, path: &str, places: Vec<Place>| Operation {
        method,
        path: path.into(),
        places,
        json_fields: Vec::new(),
        json_media: None,
        form_fields: Vec::new(),
    };
    vec![
        op(Method::POST, "/auth/logout-all", Vec::new()),
        op(
            Method::GET,
            "/internal/revocations",
            vec![Place::Query("since".into()), Place::Query("limit".into())],
        ),
        op(Method::GET, "/metrics", Vec::new()),
        op(Method::GET, "/docs/", Vec::new()),
        op(Method::GET, "/openapi.json", Vec::new()),
    ]
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or_default();
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

fn is_string(doc: &Value, schema: &Value) -> bool {
    let schema = resolve(doc, schema);
    let ty = &schema["type"];
    ty == "string"
        || ty
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "string"))
        || schema.get("enum").is_some()
}

/// The string properties of a body schema: (name, whether it is a list of strings).
fn string_fields(doc: &Value, schema: &Value) -> Vec<(String, bool)> {
    let schema = resolve(doc, schema);
    let Some(props) = schema["properties"].as_object() else {
        return Vec::new();
    };
    props
        .iter()
        .filter_map(|(name, prop)| {
            if is_string(doc, prop) {
                Some((name.clone(), false))
            } else if prop.get("items").is_some_and(|i| is_string(doc, i)) {
                Some((name.clone(), true))
            } else {
                None
            }
        })
        .collect()
}

/// Every operation of `doc` and of [`undocumented`], with its string parameters.
pub(super) fn operations(doc: &Value) -> Vec<Operation> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths in the document") {
        for (method, op) in item.as_object().expect("a path item") {
            let Ok(method) = method.to_ascii_uppercase().parse::<Method>() else {
                continue;
            };
            let mut places = Vec::new();
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap_or_default().to_owned();
                match p["in"].as_str() {
                    Some("path") => places.push(Place::Path(name)),
                    Some("query") => places.push(Place::Query(name)),
                    Some("header") => places.push(Place::Header(name.to_ascii_lowercase())),
                    _ => {}
                }
            }
            let content = &op["requestBody"]["content"];
            let json_media = ["application/json", "application/merge-patch+json"]
                .into_iter()
                .find(|m| content.get(*m).is_some())
                .map(str::to_owned);
            let json_fields = json_media
                .as_ref()
                .map(|m| string_fields(doc, &content[m.as_str()]["schema"]))
                .unwrap_or_default();
            places.extend(json_fields.iter().map(|(f, _)| Place::Json(f.clone())));
            let form_fields: Vec<String> = content
                .get("application/x-www-form-urlencoded")
                .map(|f| string_fields(doc, &f["schema"]))
                .unwrap_or_default()
                .into_iter()
                .map(|(f, _)| f)
                .collect();
            places.extend(form_fields.iter().map(|f| Place::Form(f.clone())));
            ops.push(Operation {
                method,
                path: path.clone(),
                places,
                json_fields,
                json_media,
                form_fields,
            });
        }
    }
    ops.extend(undocumented());
    for op in &mut ops {
        op.places.extend(
            COMMON_HEADERS
                .iter()
                .map(|(h, _)| Place::Header((*h).to_owned())),
        );
    }
    ops
}
