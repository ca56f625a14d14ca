//! QR images rendered on request (never stored): PNG data URL, SVG, terminal text.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use image::{ImageEncoder, Luma};
use qrcode::{render::svg, render::unicode::Dense1x2, EcLevel, QrCode};

/// Which image to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// `data:image/png;base64,...`
    PngDataUrl,
    /// An SVG document.
    Svg,
    /// Unicode half blocks.
    Terminal,
}

/// The smallest side of a rendered image, in pixels.
const MIN_SIDE: u32 = 264;

/// Renders `code` as `kind`.
pub fn render(code: &str, kind: ImageKind) -> Result<String, String> {
    let qr = QrCode::with_error_correction_level(code.as_bytes(), EcLevel::L)
        .map_err(|e| format!("could not encode the qr code: {e}"))?;
    match kind {
        ImageKind::PngDataUrl => png_data_url(&qr),
        ImageKind::Svg => Ok(qr.render::<svg::Color>().min_dimensions(MIN_SIDE, MIN_SIDE).build()),
        ImageKind::Terminal => Ok(qr
            .render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build()),
    }
}

fn png_data_url(qr: &QrCode) -> Result<String, String> {
    let pixels = qr.render::<Luma<u8>>().min_dimensions(MIN_SIDE, MIN_SIDE).build();
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(
            pixels.as_raw(),
            pixels.width(),
            pixels.height(),
            image::ExtendedColorType::L8,
        )
        .map_err(|e| format!("could not encode the png: {e}"))?;
    Ok(format!("data:image/png;base64,{}", B64.encode(png)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_renders_a_whatsapp_sized_code() {
        let code = format!(
            "2@{},{},{},{},1",
            "r".repeat(64),
            "n".repeat(44),
            "i".repeat(44),
            "a".repeat(44)
        );
        assert!(render(&code, ImageKind::PngDataUrl)
            .unwrap()
            .starts_with("data:image/png;base64,"));
        assert!(render(&code, ImageKind::Svg).unwrap().contains("<svg"));
        assert!(render(&code, ImageKind::Terminal).unwrap().contains('█'));
    }
}
