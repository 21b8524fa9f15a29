//! Response codes and the two error dialects' texts.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which error dialect an institution's applications expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// `{"RESPON": "..."}` with the historical texts that clients compare as strings.
    Legacy,
    /// `{"RESPONSE_CODE": "NN", "RESPONSE_DESC": "...", "RESPONSE": "..."}`.
    #[default]
    Coded,
}

/// A business outcome other than data, with its Dukcapil code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseCode {
    LoginFailed,
    DeviceMismatch,
    QuotaExhausted,
    OutsideAccessHours,
    InvalidParameters,
    EmptyCredentials,
    Deceased,
    Duplicate,
    NotFound,
    Inactive,
    MalformedNik,
    InstitutionInactive,
    UserInactive,
}

impl ResponseCode {
    pub const ALL: &'static [ResponseCode] = &[
        ResponseCode::LoginFailed,
        ResponseCode::DeviceMismatch,
        ResponseCode::QuotaExhausted,
        ResponseCode::OutsideAccessHours,
        ResponseCode::InvalidParameters,
        ResponseCode::EmptyCredentials,
        ResponseCode::Deceased,
        ResponseCode::Duplicate,
        ResponseCode::NotFound,
        ResponseCode::Inactive,
        ResponseCode::MalformedNik,
        ResponseCode::InstitutionInactive,
        ResponseCode::UserInactive,
    ];

    /// The two-digit code as clients see it (`"05"`).
    pub const fn code(self) -> &'static str {
        match self {
            ResponseCode::LoginFailed => "03",
            ResponseCode::DeviceMismatch => "04",
            ResponseCode::QuotaExhausted => "05",
            ResponseCode::OutsideAccessHours => "06",
            ResponseCode::InvalidParameters => "07",
            ResponseCode::EmptyCredentials => "09",
            ResponseCode::Deceased => "11",
            ResponseCode::Duplicate => "12",
            ResponseCode::NotFound => "13",
            ResponseCode::Inactive => "14",
            ResponseCode::MalformedNik => "15",
            ResponseCode::InstitutionInactive => "16",
            ResponseCode::UserInactive => "17",
        }
    }

    pub fn from_code(code: &str) -> Option<ResponseCode> {
        let code = code.trim();
        let code = if code.len() == 1 { format!("0{code}") } else { code.to_owned() };
        ResponseCode::ALL.iter().copied().find(|c| c.code() == code)
    }

    /// The coded dialect's text (`RESPONSE_DESC` and `RESPONSE`).
    pub const fn description(self) -> &'static str {
        match self {
            ResponseCode::LoginFailed => "Login Gagal",
            ResponseCode::DeviceMismatch => "IP Tidak Sesuai",
            ResponseCode::QuotaExhausted => "Kuota Akses Hari Ini Telah Habis",
            ResponseCode::OutsideAccessHours => "Diluar Jam Akses",
            ResponseCode::InvalidParameters => "Parameter Tidak Lengkap / Tidak Valid",
            ResponseCode::EmptyCredentials => "User, password dan IP tidak boleh kosong",
            ResponseCode::Deceased => "Data Ditemukan, Meninggal Dunia",
            ResponseCode::Duplicate => "Data Ditemukan, Data Ganda",
            ResponseCode::NotFound => "Data Tidak Ditemukan, NIK tidak terdapat di database Kependudukan",
            ResponseCode::Inactive => "Data Ditemukan, Status Non Aktif silahkan hubungi Dinas Dukcapil",
            ResponseCode::MalformedNik => "Data Tidak Ditemukan, NIK tidak sesuai format Dukcapil",
            ResponseCode::InstitutionInactive => "Instansi Tidak Aktif",
            ResponseCode::UserInactive => "User ID Tidak Aktif",
        }
    }

    /// The legacy dialect's `RESPON` text. Legacy clients compare these strings, so the five historical texts are
    /// used verbatim (including the double space); codes that had no legacy text fall back to the coded text.
    pub const fn legacy_text(self) -> &'static str {
        match self {
            ResponseCode::LoginFailed | ResponseCode::EmptyCredentials => "Login Gagal",
            ResponseCode::DeviceMismatch => "IP Address Tidak Sesuai",
            ResponseCode::QuotaExhausted => "Kuota Akses Hari ini telah Habis",
            ResponseCode::NotFound | ResponseCode::MalformedNik => "Data Tidak Ditemukan",
            other => other.description(),
        }
    }
}

/// The legacy text for a client address that is not registered at all (as opposed to one that does not match).
pub const LEGACY_CLIENT_NOT_REGISTERED: &str = "IP Client  Tidak terdaftar";

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.description())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_texts_match_the_wire_table() {
        let table = [
            ("03", "Login Gagal", "Login Gagal"),
            ("04", "IP Tidak Sesuai", "IP Address Tidak Sesuai"),
            ("05", "Kuota Akses Hari Ini Telah Habis", "Kuota Akses Hari ini telah Habis"),
            ("06", "Diluar Jam Akses", "Diluar Jam Akses"),
            ("07", "Parameter Tidak Lengkap / Tidak Valid", "Parameter Tidak Lengkap / Tidak Valid"),
            ("09", "User, password dan IP tidak boleh kosong", "Login Gagal"),
            ("11", "Data Ditemukan, Meninggal Dunia", "Data Ditemukan, Meninggal Dunia"),
            ("12", "Data Ditemukan, Data Ganda", "Data Ditemukan, Data Ganda"),
            ("13", "Data Tidak Ditemukan, NIK tidak terdapat di database Kependudukan", "Data Tidak Ditemukan"),
            (
                "14",
                "Data Ditemukan, Status Non Aktif silahkan hubungi Dinas Dukcapil",
                "Data Ditemukan, Status Non Aktif silahkan hubungi Dinas Dukcapil",
            ),
            ("15", "Data Tidak Ditemukan, NIK tidak sesuai format Dukcapil", "Data Tidak Ditemukan"),
            ("16", "Instansi Tidak Aktif", "Instansi Tidak Aktif"),
            ("17", "User ID Tidak Aktif", "User ID Tidak Aktif"),
        ];
        assert_eq!(table.len(), ResponseCode::ALL.len());
        for (code, desc, legacy) in table {
            let c = ResponseCode::from_code(code).unwrap();
            assert_eq!(c.code(), code);
            assert_eq!(c.description(), desc);
            assert_eq!(c.legacy_text(), legacy);
        }
        assert_eq!(ResponseCode::from_code("5"), Some(ResponseCode::QuotaExhausted));
        assert_eq!(ResponseCode::from_code("99"), None);
        assert!(LEGACY_CLIENT_NOT_REGISTERED.contains("Client  Tidak"));
    }
}
