//! Options of the `cef` and `leef` formats (the `cef = { ... }` and `leef = { ... }` tables of
//! the syslog sink) and the encoders built from them.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::cef::{CefEncoder, CefSettings};
use super::field::{InvalidSetting, MappedKey, MappedValue, ValueSource};
use super::header::{HeaderFields, SyslogPrefix};
use super::leef::{LeefEncoder, LeefSettings, LeefVersion};

/// Options of `format = "cef"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CefConfig {
    /// Syslog header before `CEF:`: `"rfc3164"` (default), `"rfc5424"` or `"none"`.
    pub header: SyslogPrefix,
    /// CEF version: `0` (default) or `1`.
    pub version: u8,
    /// Device Vendor (≤ 63 characters). Default `"Alibaba Cloud"`.
    pub vendor: String,
    /// Device Product (≤ 63 characters). Default `"Log Service"`.
    pub product: String,
    /// Device Version (≤ 31 characters). Default `"1.0"`.
    pub device_version: String,
    /// Static Device Event Class ID, used when `event_class_id_field` is unset or missing.
    /// Default `"log"`.
    pub event_class_id: String,
    /// Field holding the Device Event Class ID, e.g. `"action"`.
    pub event_class_id_field: Option<String>,
    /// Static Name. Default `"log"`.
    pub name: String,
    /// Field holding the Name, e.g. `"event_name"`.
    pub name_field: Option<String>,
    /// Static Severity: `"0"`–`"10"`, `"Unknown"`, `"Low"`, `"Medium"`, `"High"`,
    /// `"Very-High"`. Default `"5"`.
    pub severity: String,
    /// Field holding the Severity; values that are not a CEF severity use `severity`.
    pub severity_field: Option<String>,
    /// Extension keys taken from log fields: `{ src = "source_ip", suser = "user" }`.
    /// Missing or empty fields are left out; values of dictionary keys are cut to the
    /// ArcSight schema length (e.g. `act` 63, `msg` 1023 characters). `rt` (event time, epoch
    /// ms) is always added unless mapped here. Default: none.
    pub extensions: BTreeMap<String, String>,
    /// Extension keys with constant values: `{ cs1Label = "region" }`. Default: none.
    pub constants: BTreeMap<String, String>,
}

/// Options of `format = "leef"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeefConfig {
    /// Syslog header before `LEEF:`: `"rfc3164"` (default), `"rfc5424"` or `"none"`.
    pub header: SyslogPrefix,
    /// LEEF version: `"1.0"` or `"2.0"` (default).
    pub version: LeefVersion,
    /// Vendor. Default `"Alibaba Cloud"`.
    pub vendor: String,
    /// Product. Default `"Log Service"`.
    pub product: String,
    /// Product version. Default `"1.0"`.
    pub product_version: String,
    /// Static EventID (≤ 255 characters). Default `"log"`.
    pub event_id: String,
    /// Field holding the EventID, e.g. `"action"`.
    pub event_id_field: Option<String>,
    /// LEEF 2.0 attribute delimiter, one ASCII character (TAB is declared as `x09`).
    /// Default `"^"`. LEEF 1.0 always uses TAB.
    pub delimiter: char,
    /// Attributes taken from log fields: `{ src = "source_ip", usrName = "user" }`. Missing
    /// or empty fields are left out. `devTime` (epoch ms) is always added (last) unless mapped
    /// here.
    pub attributes: BTreeMap<String, String>,
    /// Attributes with constant values. Default: none.
    pub constants: BTreeMap<String, String>,
}

/// Vendor of both formats unless configured.
const DEFAULT_VENDOR: &str = "Alibaba Cloud";
/// Product of both formats unless configured.
const DEFAULT_PRODUCT: &str = "Log Service";
/// Product (device) version of both formats unless configured.
const DEFAULT_PRODUCT_VERSION: &str = "1.0";
/// Event id (CEF Device Event Class ID and Name, LEEF EventID) unless configured.
const DEFAULT_EVENT_ID: &str = "log";

impl Default for CefConfig {
    fn default() -> Self {
        Self {
            header: SyslogPrefix::default(),
            version: 0,
            vendor: DEFAULT_VENDOR.to_owned(),
            product: DEFAULT_PRODUCT.to_owned(),
            device_version: DEFAULT_PRODUCT_VERSION.to_owned(),
            event_class_id: DEFAULT_EVENT_ID.to_owned(),
            event_class_id_field: None,
            name: DEFAULT_EVENT_ID.to_owned(),
            name_field: None,
            severity: "5".to_owned(),
            severity_field: None,
            extensions: BTreeMap::new(),
            constants: BTreeMap::new(),
        }
    }
}

impl Default for LeefConfig {
    fn default() -> Self {
        Self {
            header: SyslogPrefix::default(),
            version: LeefVersion::default(),
            vendor: DEFAULT_VENDOR.to_owned(),
            product: DEFAULT_PRODUCT.to_owned(),
            product_version: DEFAULT_PRODUCT_VERSION.to_owned(),
            event_id: DEFAULT_EVENT_ID.to_owned(),
            event_id_field: None,
            delimiter: '^',
            attributes: BTreeMap::new(),
            constants: BTreeMap::new(),
        }
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
