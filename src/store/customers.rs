//! Customers and their identities: phone numbers in E.164 where they can be,
//! case-folded e-mail addresses, SIP users, chat ids. A contact is matched to a customer
//! by any identity; an unknown one becomes a new customer.

#[cfg(feature = "postgres")]
use super::pg_sql;
use super::sqlite_sql;
use super::{now, Db, Store, StoreError};
use sqlx::Row;

/// One of the demo node's customers.
#[derive(Debug, Clone, Copy)]
pub struct DemoCustomer {
    pub name: &'static str,
    pub phone: &'static str,
    pub email: &'static str,
    pub account: &'static str,
    pub tier: &'static str,
}

/// The demo node's customers. `dialplan simulate` knows them too.
pub const DEMO_CUSTOMERS: [DemoCustomer; 3] = [
    DemoCustomer {
        name: "Ada Lovelace",
        phone: "+15551234567",
        email: "ada@example.com",
        account: "1234",
        tier: "gold",
    },
    DemoCustomer {
        name: "Alan Turing",
        phone: "+15557654321",
        email: "alan@example.com",
        account: "5678",
        tier: "standard",
    },
    DemoCustomer {
        name: "Grace Hopper",
        phone: "+15550001111",
        email: "grace@example.com",
        account: "4242",
        tier: "gold",
    },
];

/// A customer's fields as a lookup gives them (the first phone and e-mail identity;
/// empty when they have none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: i64,
    pub name: String,
    pub account: String,
    pub tier: String,
    pub phone: String,
    pub email: String,
}

impl Customer {
    /// The fields by name, as a dialplan `lookup` stores them (`id`, `name`, `account`,
    /// `tier`, `phone`, `email`).
    pub fn fields(&self) -> Vec<(String, String)> {
        [
            ("id", self.id.to_string()),
            ("name", self.name.clone()),
            ("account", self.account.clone()),
            ("tier", self.tier.clone()),
            ("phone", self.phone.clone()),
            ("email", self.email.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// What kind of address identifies a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    Phone,
    Email,
    /// A SIP user that is not a phone number (`sip:alice@...`).
    Sip,
    Chat,
    Whatsapp,
}

impl IdentityKind {
    pub fn name(self) -> &'static str {
        match self {
            IdentityKind::Phone => "phone",
            IdentityKind::Email => "email",
            IdentityKind::Sip => "sip",
            IdentityKind::Chat => "chat",
            IdentityKind::Whatsapp => "whatsapp",
        }
    }
}

/// Phone numbers as E.164 where the text allows: separators dropped, `00` read as `+`.
/// Digits without a country code stay digits (`5551234`): they only match themselves.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let t = raw.trim();
    let t = t
        .strip_prefix("tel:")
        .or_else(|| t.strip_prefix("TEL:"))
        .unwrap_or(t);
    let (plus, rest) = match t.strip_prefix('+') {
        Some(r) => (true, r),
        None => match t.strip_prefix("00") {
            Some(r) => (true, r),
            None => (false, t),
        },
    };
    let mut digits = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '/' => {}
            _ => return None,
        }
    }
    if digits.len() < 3 || digits.len() > 15 {
        return None;
    }
    Some(if plus { format!("+{digits}") } else { digits })
}

/// The identity a caller id or address gives: a phone number when it reads as one,
/// an e-mail address (case-folded), else a SIP user.
pub fn identity_of(raw: &str) -> Option<(IdentityKind, String)> {
    let t = raw.trim();
    if t.is_empty() {
        return None;
    }
    if let Some(p) = normalize_phone(t) {
        return Some((IdentityKind::Phone, p));
    }
    if t.contains('@') && !t.contains(' ') {
        return Some((IdentityKind::Email, t.to_lowercase()));
    }
    Some((IdentityKind::Sip, t.to_string()))
}

/// Where a customer's identity or field came from: the source (`voice`, `chat`,
/// `whatsapp`, `sms`, `email` for the channel of the interaction that brought it;
/// `agent`, `api`, `demo`), that interaction, who (an agent's name).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Provenance<'a> {
    pub source: &'a str,
    pub interaction: Option<&'a str>,
    pub actor: &'a str,
}

impl<'a> Provenance<'a> {
    pub fn of(source: &'a str) -> Provenance<'a> {
        Provenance {
            source,
            ..Default::default()
        }
    }
}

impl Store {
    /// Notes where a customer's `field` got its value.
    pub async fn field_set(
        &self,
        customer: i64,
        field: &str,
        p: &Provenance<'_>,
    ) -> Result<(), StoreError> {
        with_db!(self, |pool, sql| {
            sqlx::query(sql("INSERT INTO customer_fields (customer_id, field, source, interaction_id, actor, at) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (customer_id, field) DO UPDATE SET source = excluded.source, interaction_id = excluded.interaction_id, actor = excluded.actor, at = excluded.at"))
                .bind(customer)
                .bind(field)
                .bind(p.source)
                .bind(p.interaction)
                .bind(p.actor)
                .bind(now())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Where a customer's identities and fields came from: `{"identities": [{kind,
    /// value, source, interaction, actor, at}], "fields": {field: {source,
    /// interaction, actor, at}}}`.
    pub async fn provenance(&self, customer: i64) -> Result<serde_json::Value, StoreError> {
        with_db!(self, |pool, sql| {
            let identities: Vec<serde_json::Value> = sqlx::query(sql("SELECT kind, value, source, interaction_id, actor, created_at FROM identities WHERE customer_id = ? ORDER BY id"))
                .bind(customer)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| serde_json::json!({"kind": r.get::<String, _>(0), "value": r.get::<String, _>(1), "source": r.get::<String, _>(2), "interaction": r.get::<Option<String>, _>(3), "actor": r.get::<String, _>(4), "at": r.get::<i64, _>(5)}))
                .collect();
            let fields: serde_json::Map<String, serde_json::Value> = sqlx::query(sql("SELECT field, source, interaction_id, actor, at FROM customer_fields WHERE customer_id = ? ORDER BY field"))
                .bind(customer)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| (r.get::<String, _>(0), serde_json::json!({"source": r.get::<String, _>(1), "interaction": r.get::<Option<String>, _>(2), "actor": r.get::<String, _>(3), "at": r.get::<i64, _>(4)})))
                .collect();
            Ok(serde_json::json!({"identities": identities, "fields": fields}))
        })
    }

    /// Demo customers (`DEMO_CUSTOMERS`), added once to an empty store.
    pub async fn seed_demo(&self) -> Result<(), StoreError> {
        let n: i64 = with_db!(self, |pool, sql| sqlx::query(sql(
            "SELECT COUNT(*) FROM customers"
        ))
        .fetch_one(pool)
        .await?
        .get(0));
        if n > 0 {
            return Ok(());
        }
        for c in DEMO_CUSTOMERS {
            let id = self
                .create_customer(c.name, Some(c.account), c.tier)
                .await?;
            let demo = Provenance::of("demo");
            self.add_identity(id, IdentityKind::Phone, c.phone, &demo)
                .await?;
            self.add_identity(id, IdentityKind::Email, c.email, &demo)
                .await?;
            for field in ["name", "account", "tier"] {
                self.field_set(id, field, &demo).await?;
            }
        }
        Ok(())
    }

    pub async fn create_customer(
        &self,
        name: &str,
        account: Option<&str>,
        tier: &str,
    ) -> Result<i64, StoreError> {
        with_db!(self, |pool, sql| {
            Ok(sqlx::query(sql(
            "INSERT INTO customers (name, account, tier, created_at) VALUES (?, ?, ?, ?) RETURNING id"
        ))
        .bind(name)
        .bind(account)
        .bind(tier)
        .bind(now())
        .fetch_one(pool)
        .await?
        .get(0))
        })
    }

    /// Links an identity (normalised) to a customer. An identity belongs to one
    /// customer: linking one that another customer holds changes nothing and says so.
    pub async fn add_identity(
        &self,
        customer: i64,
        kind: IdentityKind,
        raw: &str,
        p: &Provenance<'_>,
    ) -> Result<bool, StoreError> {
        let value = match kind {
            IdentityKind::Phone => normalize_phone(raw).unwrap_or_else(|| raw.trim().to_string()),
            IdentityKind::Email => raw.trim().to_lowercase(),
            _ => raw.trim().to_string(),
        };
        with_db!(self, |pool, sql| {
            Ok(sqlx::query(sql("INSERT INTO identities (customer_id, kind, value, created_at, source, interaction_id, actor) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"))
            .bind(customer)
            .bind(kind.name())
            .bind(&value)
            .bind(now())
            .bind(p.source)
            .bind(p.interaction)
            .bind(p.actor)
            .execute(pool)
            .await?
            .rows_affected()
            == 1)
        })
    }

    /// The customer holding an identity.
    pub async fn customer_by_identity(
        &self,
        kind: IdentityKind,
        value: &str,
    ) -> Result<Option<i64>, StoreError> {
        with_db!(self, |pool, sql| Ok(sqlx::query(sql(
            "SELECT customer_id FROM identities WHERE kind = ? AND value = ?"
        ))
        .bind(kind.name())
        .bind(value)
        .fetch_optional(pool)
        .await?
        .map(|r| r.get(0))))
    }

    /// A customer by id.
    pub async fn customer(&self, id: i64) -> Result<Option<Customer>, StoreError> {
        with_db!(self, |pool, sql| {
            let Some(r) = sqlx::query(sql(
                "SELECT id, name, account, tier FROM customers WHERE id = ?",
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?
            else {
                return Ok(None);
            };
            let mut first = [String::new(), String::new()];
            for (kind, slot) in ["phone", "email"].into_iter().zip(first.iter_mut()) {
                let v: Option<String> = sqlx::query(sql("SELECT value FROM identities WHERE customer_id = ? AND kind = ? ORDER BY id LIMIT 1"))
                    .bind(id)
                    .bind(kind)
                    .fetch_optional(pool)
                    .await?
                    .map(|r| r.get(0));
                *slot = v.unwrap_or_default();
            }
            let [phone, email] = first;
            Ok(Some(Customer {
                id: r.get(0),
                name: r.get(1),
                account: r.get::<Option<String>, _>(2).unwrap_or_default(),
                tier: r.get(3),
                phone,
                email,
            }))
        })
    }

    /// A customer's fields by caller id, phone, account, email or id.
    pub async fn lookup(&self, by: &str, value: &str) -> Result<Option<Customer>, StoreError> {
        let id: Option<i64> = match by {
            "caller" => match identity_of(value) {
                Some((k, v)) => self.customer_by_identity(k, &v).await?,
                None => None,
            },
            "phone" => match normalize_phone(value) {
                Some(p) => self.customer_by_identity(IdentityKind::Phone, &p).await?,
                None => None,
            },
            "email" => {
                self.customer_by_identity(IdentityKind::Email, &value.trim().to_lowercase())
                    .await?
            }
            "account" => with_db!(self, |pool, sql| sqlx::query(sql(
                "SELECT id FROM customers WHERE account = ?"
            ))
            .bind(value)
            .fetch_optional(pool)
            .await?
            .map(|r| r.get(0))),
            _ => value.trim().parse::<i64>().ok(),
        };
        match id {
            Some(id) => self.customer(id).await,
            None => Ok(None),
        }
    }

    /// The customer for an address: the one holding it, or a new customer with it.
    pub async fn resolve_customer(
        &self,
        from: &str,
        p: &Provenance<'_>,
    ) -> Result<Option<i64>, StoreError> {
        let Some((kind, value)) = identity_of(from) else {
            return Ok(None);
        };
        if let Some(id) = self.customer_by_identity(kind, &value).await? {
            return Ok(Some(id));
        }
        self.customer_for_new_identity(kind, &value, p).await
    }

    /// A new customer holding an identity nobody held when it was looked up (or,
    /// when someone else created it meanwhile, theirs).
    pub(super) async fn customer_for_new_identity(
        &self,
        kind: IdentityKind,
        value: &str,
        p: &Provenance<'_>,
    ) -> Result<Option<i64>, StoreError> {
        let id = self.create_customer("", None, "standard").await?;
        if !self.add_identity(id, kind, value, p).await? {
            return self.customer_by_identity(kind, value).await;
        }
        Ok(Some(id))
    }

    /// Sets a customer's name when they have none yet (a chat gives one): whether
    /// it did.
    pub async fn name_customer(
        &self,
        id: i64,
        name: &str,
        p: &Provenance<'_>,
    ) -> Result<bool, StoreError> {
        let named = with_db!(self, |pool, sql| sqlx::query(sql(
            "UPDATE customers SET name = ? WHERE id = ? AND name = ''"
        ))
        .bind(name)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected())
            == 1;
        if named {
            self.field_set(id, "name", p).await?;
        }
        Ok(named)
    }

    /// The screen-pop's record: the customer's card, their last 20 interactions on
    /// every channel, and the timeline of their open case.
    pub async fn customer_view(&self, id: i64) -> Result<Option<serde_json::Value>, StoreError> {
        let Some(card) = self.customer_card(id).await? else {
            return Ok(None);
        };
        let recent = self.customer_interactions(id, 20).await?;
        let timeline = match card["open_conversation"].as_i64() {
            Some(conv) => self
                .conversation_timeline(conv)
                .await?
                .into_iter()
                .map(|e| {
                    serde_json::json!({"interaction": e.interaction, "kind": e.kind, "data": e.data, "at": e.at})
                })
                .collect(),
            None => vec![],
        };
        let consents: serde_json::Map<String, serde_json::Value> = self
            .consents(id)
            .await?
            .into_iter()
            .map(|(k, granted, at)| (k, serde_json::json!({"granted": granted, "at": at})))
            .collect();
        Ok(Some(
            serde_json::json!({"customer": card, "interactions": recent, "timeline": timeline, "consents": consents}),
        ))
    }

    /// The customer's current consents: (`purpose:channel`, granted, when in Unix ms),
    /// the last event of each (`Store::record_consent`).
    pub async fn consents(&self, customer: i64) -> Result<Vec<(String, bool, i64)>, StoreError> {
        Ok(with_db!(self, |pool, sql| sqlx::query(sql(
            "SELECT kind, granted, at FROM consents WHERE customer_id = ? ORDER BY kind"
        ))
        .bind(customer)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| (r.get(0), r.get::<i64, _>(1) != 0, r.get(2)))
        .collect()))
    }

    /// A customer as the agent desktop shows them: fields, identities, open case.
    pub async fn customer_card(&self, id: i64) -> Result<Option<serde_json::Value>, StoreError> {
        let Some(customer) = self.customer(id).await? else {
            return Ok(None);
        };
        // Each identity with where it came from (provenance: a channel, `agent` with
        // who verified it, `api`, `demo`), and the name's source.
        let ids: Vec<serde_json::Value> = with_db!(self, |pool, sql| {
            sqlx::query(sql(
            "SELECT kind, value, source, actor FROM identities WHERE customer_id = ? ORDER BY id"
        ))
        .bind(id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            serde_json::json!({
                "kind": r.get::<String, _>(0),
                "value": r.get::<String, _>(1),
                "source": r.get::<String, _>(2),
                "actor": r.get::<String, _>(3),
            })
        })
        .collect()
        });
        let name_source: Option<(String, String)> = with_db!(self, |pool, sql| {
            sqlx::query(sql(
            "SELECT source, actor FROM customer_fields WHERE customer_id = ? AND field = 'name'"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(|r| (r.get(0), r.get(1)))
        });
        let conv = self.find_open(id).await?;
        let mut m: serde_json::Map<String, serde_json::Value> = customer
            .fields()
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        m.insert("id".into(), id.into());
        m.insert("identities".into(), ids.into());
        if let Some((source, actor)) = name_source {
            m.insert(
                "name_source".into(),
                serde_json::json!({"source": source, "actor": actor}),
            );
        }
        m.insert("open_conversation".into(), conv.into());
        Ok(Some(serde_json::Value::Object(m)))
    }
}
