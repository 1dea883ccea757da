//! Reading an origin's `GET /metrics` (Prometheus text exposition) in tests.
//!
//! [`Scrape::sum`] adds up the samples of one metric whose labels include the given pairs, so
//! a test can ask for `users_rate_limited_total{scope="user"}` or for every status of one
//! route without caring about label order or the other labels.

use std::collections::BTreeMap;

use crate::helpers::Api;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// The exposition as served, for failure messages.
    pub text: String,
    pub samples: Vec<Sample>,
}

/// `GET /metrics` of `origin`, asserting `200` and a text exposition.
pub async fn scrape(origin: &impl Api) -> Scrape {
    let reply = origin.get("/metrics").send().await;
    reply.expect_status(200);
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain"),
        "content type {content_type:?}"
    );
    Scrape::parse(&reply.text)
}

impl Scrape {
    /// Parses the text format; comment lines are skipped.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| parse_sample(line).unwrap_or_else(|| panic!("a sample line, got {line:?}")))
            .collect();
        Self {
            text: text.to_owned(),
            samples,
        }
    }

    /// The sum of every sample of `name` carrying all of `labels`; 0 when there is none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// The samples of `name` carrying all of `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|have| have == v))
        })
    }

    /// Whether a metric family `name` is declared (`# TYPE name …`).
    pub fn declares(&self, name: &str) -> bool {
        self.text
            .lines()
            .any(|l| l.split_whitespace().take(3).eq(["#", "TYPE", name]))
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, BTreeMap::new()),
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `k="v",k2="v2"` with `\"`, `\\` and `\n` escapes in values.
fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek() == Some(&',') || chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(labels);
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        }
        labels.insert(key.trim().to_owned(), value);
    }
}

#[test]
fn samples_are_parsed_with_their_labels() {
    let s = Scrape::parse(
        "# TYPE http_requests_total counter\n\
         http_requests_total{method=\"GET\",route=\"/users/{id}\",status=\"200\"} 2\n\
         http_requests_total{method=\"GET\",route=\"/users/{id}\",status=\"404\"} 1\n\
         users_cache_hits_total 3\n\
         x_bucket{le=\"+Inf\",q=\"a\\\"b\"} 4\n",
    );
    assert!(s.declares("http_requests_total"));
    assert_eq!(
        s.sum("http_requests_total", &[("route", "/users/{id}")]),
        3.0
    );
    assert_eq!(s.sum("http_requests_total", &[("status", "404")]), 1.0);
    assert_eq!(s.sum("users_cache_hits_total", &[]), 3.0);
    assert_eq!(s.sum("x_bucket", &[("q", "a\"b")]), 4.0);
    assert_eq!(s.sum("absent", &[]), 0.0);
}
