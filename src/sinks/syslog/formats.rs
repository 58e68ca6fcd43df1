//! Options of the `cef` and `leef` formats of the syslog sink (the `cef = { ... }` and
//! `leef = { ... }` tables) and the encoders built from them.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::encoding::cef::{CefEncoder, CefSettings};
use crate::encoding::field::{InvalidSetting, MappedKey, MappedValue, ValueSource};
use crate::encoding::header::{HeaderFields, SyslogPrefix};
use crate::encoding::leef::{LeefEncoder, LeefSettings, LeefVersion};

/// Options of `format = "cef"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CefConfig {
    /// Syslog header before `CEF:`: `"rfc3164"` (default), `"rfc5424"` or `"none"`.
    #[serde(default)]
    pub header: SyslogPrefix,
    /// CEF version: `0` (default) or `1`.
    #[serde(default)]
    pub version: u8,
    /// Device Vendor (≤ 63 characters). Default `"Alibaba Cloud"`.
    #[serde(default = "default_vendor")]
    pub vendor: String,
    /// Device Product (≤ 63 characters). Default `"Log Service"`.
    #[serde(default = "default_product")]
    pub product: String,
    /// Device Version (≤ 31 characters). Default `"1.0"`.
    #[serde(default = "default_product_version")]
    pub device_version: String,
    /// Static Device Event Class ID, used when `event_class_id_field` is unset or missing.
    /// Default `"log"`.
    #[serde(default = "default_event_id")]
    pub event_class_id: String,
    /// Field holding the Device Event Class ID, e.g. `"action"`.
    #[serde(default)]
    pub event_class_id_field: Option<String>,
    /// Static Name. Default `"log"`.
    #[serde(default = "default_event_id")]
    pub name: String,
    /// Field holding the Name, e.g. `"event_name"`.
    #[serde(default)]
    pub name_field: Option<String>,
    /// Static Severity: `"0"`–`"10"`, `"Unknown"`, `"Low"`, `"Medium"`, `"High"`,
    /// `"Very-High"`. Default `"5"`.
    #[serde(default = "default_cef_severity")]
    pub severity: String,
    /// Field holding the Severity; values that are not a CEF severity use `severity`.
    #[serde(default)]
    pub severity_field: Option<String>,
    /// Extension keys taken from log fields: `{ src = "source_ip", suser = "user" }`.
    /// Missing or empty fields are left out; values of dictionary keys are cut to the
    /// ArcSight schema length (e.g. `act` 63, `msg` 1023 characters). `rt` (event time, epoch
    /// ms) is always added unless mapped here. Default: none.
    #[serde(default)]
    pub extensions: BTreeMap<String, String>,
    /// Extension keys with constant values: `{ cs1Label = "region" }`. Default: none.
    #[serde(default)]
    pub constants: BTreeMap<String, String>,
}

/// Options of `format = "leef"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeefConfig {
    /// Syslog header before `LEEF:`: `"rfc3164"` (default), `"rfc5424"` or `"none"`.
    #[serde(default)]
    pub header: SyslogPrefix,
    /// LEEF version: `"1.0"` or `"2.0"` (default).
    #[serde(default)]
    pub version: LeefVersion,
    /// Vendor. Default `"Alibaba Cloud"`.
    #[serde(default = "default_vendor")]
    pub vendor: String,
    /// Product. Default `"Log Service"`.
    #[serde(default = "default_product")]
    pub product: String,
    /// Product version. Default `"1.0"`.
    #[serde(default = "default_product_version")]
    pub product_version: String,
    /// Static EventID (≤ 255 characters). Default `"log"`.
    #[serde(default = "default_event_id")]
    pub event_id: String,
    /// Field holding the EventID, e.g. `"action"`.
    #[serde(default)]
    pub event_id_field: Option<String>,
    /// LEEF 2.0 attribute delimiter, one ASCII character (TAB is declared as `x09`).
    /// Default `"^"`. LEEF 1.0 always uses TAB.
    #[serde(default = "default_leef_delimiter")]
    pub delimiter: char,
    /// Attributes taken from log fields: `{ src = "source_ip", usrName = "user" }`. Missing
    /// or empty fields are left out. `devTime` (epoch ms) is always added (last) unless mapped
    /// here.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Attributes with constant values. Default: none.
    #[serde(default)]
    pub constants: BTreeMap<String, String>,
}

fn default_vendor() -> String {
    "Alibaba Cloud".to_owned()
}
fn default_product() -> String {
    "Log Service".to_owned()
}
fn default_product_version() -> String {
    "1.0".to_owned()
}
fn default_event_id() -> String {
    "log".to_owned()
}
fn default_cef_severity() -> String {
    "5".to_owned()
}
fn default_leef_delimiter() -> char {
    '^'
}

impl Default for CefConfig {
    fn default() -> Self {
        toml::from_str("").expect("every CEF option has a default")
    }
}

impl Default for LeefConfig {
    fn default() -> Self {
        toml::from_str("").expect("every LEEF option has a default")
    }
}

impl CefConfig {
    /// The CEF encoder, with `header` for the syslog prefix.
    ///
    /// # Errors
    ///
    /// Names the offending `cef.*` key.
    pub fn encoder(&self, header: HeaderFields) -> Result<CefEncoder, InvalidSetting> {
        CefEncoder::new(CefSettings {
            prefix: self.header,
            header,
            version: self.version,
            vendor: self.vendor.clone(),
            product: self.product.clone(),
            device_version: self.device_version.clone(),
            event_class_id: ValueSource {
                field: self.event_class_id_field.clone(),
                fallback: self.event_class_id.clone(),
            },
            name: ValueSource {
                field: self.name_field.clone(),
                fallback: self.name.clone(),
            },
            severity: ValueSource {
                field: self.severity_field.clone(),
                fallback: self.severity.clone(),
            },
            extensions: mapped_keys(&self.extensions, &self.constants),
        })
    }
}

impl LeefConfig {
    /// The LEEF encoder, with `header` for the syslog prefix.
    ///
    /// # Errors
    ///
    /// Names the offending `leef.*` key.
    pub fn encoder(&self, header: HeaderFields) -> Result<LeefEncoder, InvalidSetting> {
        LeefEncoder::new(LeefSettings {
            prefix: self.header,
            header,
            version: self.version,
            vendor: self.vendor.clone(),
            product: self.product.clone(),
            product_version: self.product_version.clone(),
            event_id: ValueSource {
                field: self.event_id_field.clone(),
                fallback: self.event_id.clone(),
            },
            delimiter: self.delimiter,
            attributes: mapped_keys(&self.attributes, &self.constants),
        })
    }
}

/// Field mappings followed by constants, each in key order.
fn mapped_keys(
    fields: &BTreeMap<String, String>,
    constants: &BTreeMap<String, String>,
) -> Vec<MappedKey> {
    let from_fields = fields.iter().map(|(key, field)| MappedKey {
        key: key.clone(),
        value: MappedValue::Field(field.clone()),
    });
    let from_constants = constants.iter().map(|(key, value)| MappedKey {
        key: key.clone(),
        value: MappedValue::Constant(value.clone()),
    });
    from_fields.chain(from_constants).collect()
}
