//! Perceptual hashes, computed by one pipeline whatever the decoder: a luma plane (BT.601, as
//! JPEG's own Y channel) → an area-averaged 32×32 grid → EXIF orientation applied → the hash.
//! Both the difference hash (dHash) and the DCT hash (pHash) come from that same grid; the
//! service stores [`PHASH`]-style values chosen by the robustness measurements in
//! `tests/api/photos.rs` (see `choose` below).

/// A grayscale image, row-major, one byte per pixel.
#[derive(Debug, Clone)]
pub struct Luma {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Luma {
    /// BT.601 luma of packed RGB pixels, the same weights JPEG uses for its Y channel, so a PNG
    /// and a JPEG of the same picture land on the same grid.
    pub fn from_rgb(width: usize, height: usize, rgb: &[u8]) -> Self {
        let pixels = rgb
            .chunks_exact(3)
            .map(|p| {
                ((19_595 * u32::from(p[0])
                    + 38_470 * u32::from(p[1])
                    + 7_471 * u32::from(p[2])
                    + 32_768)
                    >> 16) as u8
            })
            .collect();
        Self {
            width,
            height,
            pixels,
        }
    }
}

const GRID: usize = 32;

/// Area-averages `src` down (or up) to `w`×`h`, each output cell the exact mean of the source
/// area it covers, so small crops and rescales move values only a little.
fn area_resample(src: &[f32], sw: usize, sh: usize, w: usize, h: usize) -> Vec<f32> {
    let fx = sw as f64 / w as f64;
    let fy = sh as f64 / h as f64;
    // Per output column: the source columns it covers and their weights.
    let spans = |n: usize, f: f64, limit: usize| -> Vec<Vec<(usize, f64)>> {
        (0..n)
            .map(|i| {
                let (a, b) = (i as f64 * f, (i + 1) as f64 * f);
                let mut out = Vec::new();
                let mut x = a.floor() as usize;
                while (x as f64) < b && x < limit {
                    let lo = (x as f64).max(a);
                    let hi = ((x + 1) as f64).min(b);
                    if hi > lo {
                        out.push((x, hi - lo));
                    }
                    x += 1;
                }
                out
            })
            .collect()
    };
    let xs = spans(w, fx, sw);
    let ys = spans(h, fy, sh);
    let mut out = vec![0f32; w * h];
    for (oy, yspan) in ys.iter().enumerate() {
        for (ox, xspan) in xs.iter().enumerate() {
            let mut sum = 0f64;
            let mut weight = 0f64;
            for &(sy, wy) in yspan {
                let row = &src[sy * sw..(sy + 1) * sw];
                for &(sx, wx) in xspan {
                    sum += f64::from(row[sx]) * wx * wy;
                    weight += wx * wy;
                }
            }
            out[oy * w + ox] = if weight > 0.0 {
                (sum / weight) as f32
            } else {
                0.0
            };
        }
    }
    out
}

/// Applies EXIF orientation (1–8) to a square grid, so hashes describe the picture as shown.
fn orient(grid: &[f32], n: usize, orientation: u16) -> Vec<f32> {
    let mut out = vec![0f32; n * n];
    for y in 0..n {
        for x in 0..n {
            // Where the displayed pixel (x, y) comes from in the stored image.
            let (sx, sy) = match orientation {
                2 => (n - 1 - x, y),
                3 => (n - 1 - x, n - 1 - y),
                4 => (x, n - 1 - y),
                5 => (y, x),
                6 => (y, n - 1 - x),
                7 => (n - 1 - y, n - 1 - x),
                8 => (n - 1 - y, x),
                _ => (x, y),
            };
            out[y * n + x] = grid[sy * n + sx];
        }
    }
    out
}

/// The oriented 32×32 grid every hash starts from.
pub fn grid(luma: &Luma, orientation: u16) -> Vec<f32> {
    let src: Vec<f32> = luma.pixels.iter().map(|&p| f32::from(p)).collect();
    let g = area_resample(&src, luma.width, luma.height, GRID, GRID);
    orient(&g, GRID, orientation)
}

/// Difference hash: 8 rows of 8 left-to-right brightness comparisons on a 9×8 grid.
pub fn dhash(grid32: &[f32]) -> u64 {
    let g = area_resample(grid32, GRID, GRID, 9, 8);
    let mut hash = 0u64;
    for y in 0..8 {
        for x in 0..8 {
            hash = (hash << 1) | u64::from(g[y * 9 + x] < g[y * 9 + x + 1]);
        }
    }
    hash
}

/// DCT hash: the 8×8 lowest frequencies of the 32×32 DCT-II, each compared with their median
/// (the DC term excluded from the median, as it only says how bright the picture is).
pub fn phash(grid32: &[f32]) -> u64 {
    let n = GRID;
    let cos: Vec<f64> = (0..8)
        .flat_map(|u| {
            (0..n).map(move |x| {
                ((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / (2 * n) as f64).cos()
            })
        })
        .collect();
    // Rows first (only the 8 frequencies kept), then columns.
    let mut rows = vec![0f64; n * 8];
    for y in 0..n {
        for u in 0..8 {
            rows[y * 8 + u] = (0..n)
                .map(|x| f64::from(grid32[y * n + x]) * cos[u * n + x])
                .sum();
        }
    }
    let mut coeffs = [0f64; 64];
    for v in 0..8 {
        for u in 0..8 {
            coeffs[v * 8 + u] = (0..n).map(|y| rows[y * 8 + u] * cos[v * n + y]).sum();
        }
    }
    let mut sorted: Vec<f64> = coeffs[1..].to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = (sorted[31] + sorted[32]) / 2.0;
    coeffs
        .iter()
        .fold(0u64, |hash, &c| (hash << 1) | u64::from(c > median))
}

/// Bits that differ between two hashes.
pub fn distance(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: usize, h: usize) -> Luma {
        let pixels = (0..h)
            .flat_map(|y| (0..w).map(move |x| ((x * 255 / w + y * 37 / h) % 256) as u8))
            .collect();
        Luma {
            width: w,
            height: h,
            pixels,
        }
    }

    #[test]
    fn area_resample_preserves_the_mean() {
        let src: Vec<f32> = (0..(10 * 7)).map(|i| i as f32).collect();
        let out = area_resample(&src, 10, 7, 3, 2);
        let mean_in: f32 = src.iter().sum::<f32>() / src.len() as f32;
        let mean_out: f32 = out.iter().sum::<f32>() / out.len() as f32;
        assert!((mean_in - mean_out).abs() < 1e-3);
    }

    #[test]
    fn scaling_barely_moves_the_hashes() {
        let big = gradient(640, 480);
        let small = gradient(320, 240);
        assert!(distance(dhash(&grid(&big, 1)), dhash(&grid(&small, 1))) <= 2);
        assert!(distance(phash(&grid(&big, 1)), phash(&grid(&small, 1))) <= 2);
    }

    #[test]
    fn orientation_is_applied() {
        let luma = gradient(64, 64);
        let upright = grid(&luma, 1);
        let turned = grid(&luma, 3);
        assert_eq!(upright[0], turned[GRID * GRID - 1]);
        assert_ne!(dhash(&upright), dhash(&turned));
    }
}
