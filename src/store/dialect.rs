//! The SQL dialect: statements are written once in the SQL SQLite and PostgreSQL share
//! and translated for PostgreSQL here; and which database a `[data] database` value
//! names.

pub(super) fn sqlite_sql(s: &'static str) -> &'static str {
    s
}

/// A statement in PostgreSQL's dialect: `?` placeholders numbered `$1, $2...`,
/// `json_object(` as `json_build_object(`. Statements are `'static` and few, so each is
/// translated once and kept.
#[cfg(feature = "postgres")]
pub fn pg_sql(s: &'static str) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static DONE: OnceLock<Mutex<HashMap<&'static str, &'static str>>> = OnceLock::new();
    let done = DONE.get_or_init(Default::default);
    if let Some(t) = done.lock().unwrap_or_else(|e| e.into_inner()).get(s) {
        return t;
    }
    let mut out = String::with_capacity(s.len() + 16);
    let mut n = 0;
    let mut in_str = false;
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if c == '\'' {
            in_str = !in_str;
        }
        if !in_str && c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else if !in_str && rest.starts_with("json_object(") {
            out.push_str("json_build_object(");
            rest = &rest["json_object(".len()..];
            continue;
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    let t: &'static str = Box::leak(out.into_boxed_str());
    done.lock().unwrap_or_else(|e| e.into_inner()).insert(s, t);
    t
}

/// Which database a `[data] database` value names.
#[derive(Debug, PartialEq, Eq)]
pub enum Database<'a> {
    /// SQLite: the default file (empty value) or `sqlite:PATH`.
    Sqlite(Option<&'a str>),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(&'a str),
}

impl<'a> Database<'a> {
    /// Reads the value; an error says what is accepted.
    pub fn parse(url: &'a str) -> Result<Database<'a>, String> {
        let url = url.trim();
        if url.is_empty() {
            return Ok(Database::Sqlite(None));
        }
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(format!("\"{url}\" names no file (sqlite:PATH)"));
            }
            return Ok(Database::Sqlite(Some(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if !cfg!(feature = "postgres") {
                return Err(
                    "this omnigate was built without PostgreSQL (cargo feature `postgres`)".into(),
                );
            }
            return Ok(Database::Postgres(url));
        }
        Err(format!(
            "\"{url}\" is not sqlite:PATH, postgres://... or postgresql://..."
        ))
    }
}
