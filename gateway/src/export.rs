//! `simpul-gateway device export`: the tunnel config an operator laptop imports into a stock WireGuard client, as a
//! wg-quick file or as a QR code of that same file. The file itself (its fields, their checks, and reading it back)
//! is `simpul_tunnel::wg_quick`, shared with Simpul's own client; what is the gateway's alone is the QR code.

use qrcode::types::QrError;
use qrcode::{Color, EcLevel, QrCode};
pub use simpul_tunnel::wg_quick::ClientConfig;
use simpul_tunnel::wg_quick::WgQuickError;

/// Error correction level L rather than M. The payload is a ~300-byte wg-quick file shown on a clean screen or a
/// fresh print-out, where the bigger modules of a smaller symbol help a phone camera more than redundancy does: such
/// a file needs version 11 (61 modules) at L but version 13 (69) at M, and at M a slightly longer endpoint already
/// reaches version 14, whose 81-column terminal rendering wraps in an 80-column terminal and no longer scans.
/// It is also what `qrencode`, the tool the WireGuard documentation uses for this, picks by default.
const EC_LEVEL: EcLevel = EcLevel::L;

/// The margin ISO/IEC 18004 requires around a QR symbol; scanners locate the finder patterns against it.
const QUIET_ZONE: usize = 4;

/// Big enough to print sharply at any size a phone can read, small enough to send over chat.
const PNG_MODULE_PX: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    File(#[from] WgQuickError),
    #[error("{len} bytes are too many for a QR code")]
    TooLongForQr { len: usize },
    #[error("cannot build the QR code")]
    Qr(#[source] QrError),
    #[error("cannot encode the PNG")]
    Png(#[from] png::EncodingError),
}

/// The wg-quick file (see `simpul_tunnel::wg_quick::render`): it holds the device's private key, so the caller writes
/// it with mode 0600.
pub fn wg_quick(config: &ClientConfig) -> Result<String, ExportError> {
    Ok(simpul_tunnel::wg_quick::render(config)?)
}

/// The QR code of `text` for a terminal, one character per module column and two module rows per line (▀ ▄ █ and
/// space), so a square module is about one character cell wide and half a cell tall, and a wg-quick file fits an
/// 80-column terminal.
///
/// Light modules, the quiet zone included, are the glyphs ("ink") and dark modules are blank cells. On the usual
/// light-on-dark terminal (and over SSH to the gateway that is what most admins see) the code then appears the way
/// scanners expect, dark on a light quiet zone; drawing dark modules as ink would show an inverted code there, which
/// many scanners never find. This is `qrencode -t utf8`'s choice. On a light-background terminal the code appears
/// inverted; export the PNG there. Plain text rather than ANSI colours, so the output survives being piped,
/// pasted or saved. Every line starts and ends with quiet-zone ink, so trimming trailing spaces changes nothing.
pub fn qr_terminal(text: &str) -> Result<String, ExportError> {
    let code = encode(text)?;
    let side = code.width() + 2 * QUIET_ZONE;
    let mut out = String::with_capacity((side + 1) * side.div_ceil(2) * '█'.len_utf8());
    for y in (0..side).step_by(2) {
        for x in 0..side {
            let top = is_light(&code, x, y);
            // The symbol plus quiet zone has an odd number of rows; the last line's lower half is background.
            let bottom = y + 1 < side && is_light(&code, x, y + 1);
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    Ok(out)
}

/// The QR code of `text` as an 8-bit grayscale PNG, black on white, for printing or sending.
pub fn qr_png(text: &str) -> Result<Vec<u8>, ExportError> {
    let code = encode(text)?;
    let modules = code.width() + 2 * QUIET_ZONE;
    let side = modules * PNG_MODULE_PX;
    let mut pixels = Vec::with_capacity(side * side);
    for y in 0..modules {
        let row: Vec<u8> =
            (0..modules).flat_map(|x| [if is_light(&code, x, y) { u8::MAX } else { 0 }; PNG_MODULE_PX]).collect();
        for _ in 0..PNG_MODULE_PX {
            pixels.extend_from_slice(&row);
        }
    }
    let side = u32::try_from(side).expect("a version 40 QR code is 1480 px wide");
    let mut png_bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut png_bytes, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(png_bytes)
}

fn encode(text: &str) -> Result<QrCode, ExportError> {
    QrCode::with_error_correction_level(text, EC_LEVEL).map_err(|e| match e {
        QrError::DataTooLong => ExportError::TooLongForQr { len: text.len() },
        other => ExportError::Qr(other),
    })
}

/// Coordinates count from the outer corner of the quiet zone, which is light like the light modules.
fn is_light(code: &QrCode, x: usize, y: usize) -> bool {
    match (x.checked_sub(QUIET_ZONE), y.checked_sub(QUIET_ZONE)) {
        (Some(x), Some(y)) if x < code.width() && y < code.width() => code[(x, y)] == Color::Light,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::Ipv4Addr;

    fn sample() -> ClientConfig {
        ClientConfig {
            device: "laptop-ops-01 (Bandung)".to_owned(),
            private_key: "SE9aWEUMh1+jy41Ek0TdPmmpyHAwEyNAp9M36ddJV3A=".to_owned(),
            address: Ipv4Addr::new(10, 77, 3, 14),
            gateway_public_key: "QseDvwwlhEW+w4/vfwpWNgLOc+mEGVd82fVx+IITWHM=".to_owned(),
            endpoint: "gateway-simpul.kominfo.example.go.id:51820".to_owned(),
            allowed_ips: vec!["10.77.0.1/32".parse().unwrap()],
            persistent_keepalive: Some(25),
            mtu: Some(1380),
        }
    }

    #[test]
    fn an_invalid_config_is_refused_before_any_file_or_code_exists() {
        let error = wg_quick(&ClientConfig { device: "x\nPostUp = id".to_owned(), ..sample() }).unwrap_err();
        assert!(matches!(error, ExportError::File(WgQuickError::InvalidDeviceName(_))), "{error:?}");
    }

    /// The grayscale pixels an image decoder sees, as rows of `width` bytes; 0 is black.
    struct Gray {
        width: usize,
        height: usize,
        pixels: Vec<u8>,
    }

    /// With rqrr, a decoder that shares no code with the qrcode encoder. Returns the payload and the raw error
    /// correction indicator (1 is L).
    fn decode_qr(image: &Gray) -> (Vec<u8>, u16) {
        let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(image.width, image.height, |x, y| {
            image.pixels[y * image.width + x]
        });
        let grids = prepared.detect_grids();
        assert_eq!(grids.len(), 1, "expected exactly one QR code in the image");
        let mut payload = Vec::new();
        let meta = grids[0].decode_to(&mut payload).expect("the QR code does not decode");
        (payload, meta.ecc_level)
    }

    /// Redraws the text as a terminal with light text on a dark background would show it, with `PX` pixels per
    /// character column and per half character row, inside a margin of plain background.
    fn paint_dark_terminal(rendering: &str) -> Gray {
        const PX: usize = 4;
        const MARGIN: usize = 3 * PX;
        let lines: Vec<Vec<char>> = rendering.lines().map(|line| line.chars().collect()).collect();
        let columns = lines.iter().map(Vec::len).max().unwrap();
        let width = columns * PX + 2 * MARGIN;
        let height = lines.len() * 2 * PX + 2 * MARGIN;
        let mut pixels = vec![0u8; width * height];
        for (row, line) in lines.iter().enumerate() {
            for (column, glyph) in line.iter().enumerate() {
                let (top, bottom) = match glyph {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    ' ' => (false, false),
                    other => panic!("unexpected character {other:?} in the rendering"),
                };
                for (half, ink) in [(0, top), (1, bottom)] {
                    if !ink {
                        continue;
                    }
                    for dy in 0..PX {
                        let y = MARGIN + (row * 2 + half) * PX + dy;
                        let x = MARGIN + column * PX;
                        pixels[y * width + x..y * width + x + PX].fill(u8::MAX);
                    }
                }
            }
        }
        Gray { width, height, pixels }
    }

    #[test]
    fn qr_terminal_scans_back_to_the_file_byte_for_byte() {
        let file = wg_quick(&sample()).unwrap();
        let rendering = qr_terminal(&file).unwrap();
        let lines: Vec<Vec<char>> = rendering.lines().map(|line| line.chars().collect()).collect();
        let side = lines[0].len();
        assert!(side <= 80, "{side} columns do not fit an 80-column terminal");
        assert_eq!(lines.len(), side.div_ceil(2));
        assert!(rendering.ends_with('\n'));
        for line in &lines {
            assert_eq!(line.len(), side);
            // Four modules of quiet zone left and right, drawn as ink.
            assert!(line[..QUIET_ZONE].iter().chain(&line[side - QUIET_ZONE..]).all(|c| matches!(c, '█' | '▀')));
        }
        // Four rows of quiet zone on top; below, three and the odd last one as upper halves over the background.
        assert!(lines[..2].iter().flatten().all(|&c| c == '█'));
        assert!(lines[lines.len() - 1].iter().all(|&c| c == '▀'));
        // The top-left finder pattern's dark outer ring (rows 4 and 5, column 4) is blank: light modules are ink.
        assert_eq!(lines[2][QUIET_ZONE], ' ');

        let (payload, ecc_level) = decode_qr(&paint_dark_terminal(&rendering));
        assert_eq!(String::from_utf8(payload).unwrap(), file);
        assert_eq!(ecc_level, 1, "expected error correction level L");
    }

    #[test]
    fn qr_png_scans_back_to_the_file_byte_for_byte() {
        let file = wg_quick(&sample()).unwrap();
        let png_bytes = qr_png(&file).unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes)).read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut pixels).unwrap();
        assert_eq!((frame.color_type, frame.bit_depth), (png::ColorType::Grayscale, png::BitDepth::Eight));
        let (width, height) = (frame.width as usize, frame.height as usize);
        let modules = QrCode::with_error_correction_level(&file, EC_LEVEL).unwrap().width() + 2 * QUIET_ZONE;
        assert_eq!((width, height), (modules * PNG_MODULE_PX, modules * PNG_MODULE_PX));
        pixels.truncate(width * height);
        assert!(pixels.iter().all(|&p| p == 0 || p == u8::MAX));
        // White quiet zone up to the finder pattern, which starts black at module (4, 4).
        let at = |module_x: usize, module_y: usize| pixels[module_y * PNG_MODULE_PX * width + module_x * PNG_MODULE_PX];
        assert!((0..QUIET_ZONE).all(|m| at(m, m) == u8::MAX && at(modules - 1 - m, m) == u8::MAX));
        assert_eq!(at(QUIET_ZONE, QUIET_ZONE), 0);

        let (payload, ecc_level) = decode_qr(&Gray { width, height, pixels });
        assert_eq!(String::from_utf8(payload).unwrap(), file);
        assert_eq!(ecc_level, 1, "expected error correction level L");
    }

    #[test]
    fn qr_refuses_text_too_long_for_a_qr_code() {
        // 2953 bytes is the byte-mode capacity of version 40 at level L (at M it is 2331).
        assert!(qr_terminal(&"x".repeat(2953)).is_ok());
        let long = "x".repeat(2954);
        assert!(matches!(qr_terminal(&long), Err(ExportError::TooLongForQr { len: 2954 })));
        assert!(matches!(qr_png(&long), Err(ExportError::TooLongForQr { len: 2954 })));
    }
}
