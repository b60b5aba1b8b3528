//! PDF to fax TIFF: Faxbox against Ghostscript on the same corpus in the same
//! run (docs/architecture.md, "Numbers to beat"). Run with
//! `cargo bench --bench convert` (corpus: `FAXBOX_CORPUS`, default
//! `../shared/corpus/pdf`).
//!
//! Ghostscript runs the command Kazoo uses, `gs -q -dNOPAUSE -dBATCH -dSAFER
//! -sDEVICE=tiffg4 -r204x196 -dPDFFitPage`, plus `-g1728x2156` so its pages
//! have the fax geometry ours have (Letter at fine resolution) and can be
//! compared pixel for pixel; one file at a time, as Kazoo runs it.
//!
//! Agreement of the two 1-bit renderings, per page of equal size: a black
//! pixel in one rendering "agrees" when the other has a black pixel within
//! one pixel of it (3x3 neighbourhood, which forgives the half-pixel
//! placement differences of two rasterizers); agreement = agreeing black
//! pixels of both / all black pixels of both. 100 % means every mark in
//! either rendering is present in the other.

#[path = "common/summary.rs"]
mod summary;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use faxbox::documents::{BitPage, ConvertOptions, FaxDocument, Input, convert, decode_fax_tiff};

fn main() {
    let Some((dir, files)) = corpus() else {
        return;
    };
    let have_gs = Command::new("gs")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let opts = ConvertOptions::default();
    println!(
        "corpus: {} ({} PDFs), faxbox threads: {}",
        dir.display(),
        files.len(),
        opts.threads
    );
    println!(
        "{:<34} {:>5} {:>5} {:>10} {:>10} {:>8} {:>8} {:>9}",
        "file", "pages", "gs", "faxbox B", "gs B", "fb ms", "gs ms", "agree %"
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut totals = Totals::default();
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let Some((ours, fb_elapsed)) = run_faxbox(file, &name, &opts, &mut totals) else {
            failures.push(name);
            continue;
        };
        let line = if have_gs {
            run_ghostscript_against(file, &name, &ours, fb_elapsed, tmp.path(), &mut totals)
        } else {
            format!(
                "{:<34} {:>5} {:>5} {:>10} {:>10} {:>8.0} {:>8} {:>9}",
                truncate(&name, 34),
                ours.pages,
                "-",
                ours.tiff.len(),
                "-",
                fb_elapsed.as_secs_f64() * 1000.0,
                "-",
                "-"
            )
        };
        println!("{line}");
    }
    println!();
    print_totals(&totals, have_gs);
    if !failures.is_empty() {
        println!("not converted: {}", failures.join(", "));
    }
}

/// The corpus directory and its PDFs in name order (only the two smallest
/// in a smoke run), or `None` when there is no corpus.
fn corpus() -> Option<(PathBuf, Vec<PathBuf>)> {
    let dir = std::env::var_os("FAXBOX_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/pdf"));
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("pdf")))
            .collect(),
        Err(e) => {
            println!(
                "skipped: no corpus at {} ({e}); set FAXBOX_CORPUS",
                dir.display()
            );
            return None;
        }
    };
    files.sort();
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // unoptimized without it: then a smoke run on the two smallest files
    // shows the benchmark still works, and gives no verdict.
    let measuring = std::env::args().any(|a| a == "--bench");
    if !measuring {
        files.sort_by_key(|f| std::fs::metadata(f).map_or(u64::MAX, |m| m.len()));
        files.truncate(2);
        println!(
            "smoke run (no --bench): {} files, numbers mean nothing",
            files.len()
        );
    }
    Some((dir, files))
}

/// What both converters did over the whole corpus.
#[derive(Default)]
struct Totals {
    fb_time: Duration,
    gs_time: Duration,
    fb_pages: usize,
    gs_pages: usize,
    fb_bytes: usize,
    gs_bytes: usize,
    agree_sum: u64,
    dark_sum: u64,
    fb_cpu: u64,
    gs_cpu: u64,
    /// The file whose fax TIFF is largest against Ghostscript's.
    worst_bytes: Option<(f64, String)>,
}

/// Converts one PDF with Faxbox: its fax document and how long it took, or
/// `None` (said on its table line) when it failed.
fn run_faxbox(
    file: &Path,
    name: &str,
    opts: &ConvertOptions,
    totals: &mut Totals,
) -> Option<(FaxDocument, Duration)> {
    let bytes = std::fs::read(file).expect("read corpus file");
    let t = Instant::now();
    let cpu0 = cpu_ticks();
    let ours = convert(&[Input::new(name.to_owned(), bytes)], opts);
    let fb_elapsed = t.elapsed();
    totals.fb_cpu += cpu_ticks().own - cpu0.own;
    let ours = match ours {
        Ok(doc) => doc,
        Err(e) => {
            println!("{name:<34} FAILED: {e}");
            return None;
        }
    };
    totals.fb_time += fb_elapsed;
    totals.fb_pages += ours.pages;
    totals.fb_bytes += ours.tiff.len();
    Some((ours, fb_elapsed))
}

/// Converts one PDF with Ghostscript as Kazoo runs it, compares its pages
/// with Faxbox's, and gives the file's table line.
fn run_ghostscript_against(
    file: &Path,
    name: &str,
    ours: &FaxDocument,
    fb_elapsed: Duration,
    tmp: &Path,
    totals: &mut Totals,
) -> String {
    let out = tmp.join("gs.tif");
    let t = Instant::now();
    let cpu0 = cpu_ticks();
    let status = Command::new("gs")
        .args([
            "-q",
            "-dNOPAUSE",
            "-dBATCH",
            "-dSAFER",
            "-sDEVICE=tiffg4",
            "-r204x196",
            "-g1728x2156",
        ])
        .arg("-dPDFFitPage")
        .arg(format!("-sOutputFile={}", out.display()))
        .arg(file)
        .output();
    let gs_elapsed = t.elapsed();
    totals.gs_cpu += cpu_ticks().children - cpu0.children;
    let gs_tiff = std::fs::read(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    let gs_decoded = decode_fax_tiff(&gs_tiff).unwrap_or_default();
    if status.is_ok_and(|s| s.status.success()) {
        totals.gs_time += gs_elapsed;
        totals.gs_pages += gs_decoded.len();
        totals.gs_bytes += gs_tiff.len();
    }
    let ours_decoded = decode_fax_tiff(&ours.tiff).expect("our own TIFF decodes");
    let (mut a, mut d) = (0u64, 0u64);
    for (p, q) in ours_decoded.iter().zip(&gs_decoded) {
        if let Some((agree, dark)) = agreement(p, q) {
            a += agree;
            d += dark;
        }
    }
    totals.agree_sum += a;
    totals.dark_sum += d;
    if !gs_tiff.is_empty() {
        let ratio = ours.tiff.len() as f64 / gs_tiff.len() as f64;
        if totals.worst_bytes.as_ref().is_none_or(|(w, _)| ratio > *w) {
            totals.worst_bytes = Some((ratio, name.to_owned()));
        }
    }
    format!(
        "{:<34} {:>5} {:>5} {:>10} {:>10} {:>8.0} {:>8.0} {:>9}",
        truncate(name, 34),
        ours.pages,
        gs_decoded.len(),
        ours.tiff.len(),
        gs_tiff.len(),
        fb_elapsed.as_secs_f64() * 1000.0,
        gs_elapsed.as_secs_f64() * 1000.0,
        if d == 0 {
            "-".to_string()
        } else {
            format!("{:.2}", 100.0 * a as f64 / d as f64)
        }
    )
}

/// The verdict under the table: speed, CPU, size and agreement against
/// Ghostscript, also recorded in the benchmark summary.
fn print_totals(t: &Totals, have_gs: bool) {
    let rate = |pages: usize, t: Duration| pages as f64 / t.as_secs_f64().max(1e-9);
    let Totals {
        fb_time,
        gs_time,
        fb_pages,
        gs_pages,
        fb_bytes,
        gs_bytes,
        agree_sum,
        dark_sum,
        fb_cpu,
        gs_cpu,
        ref worst_bytes,
    } = *t;
    println!(
        "faxbox:      {fb_pages} pages in {:.2} s = {:.1} pages/s, {fb_bytes} bytes",
        fb_time.as_secs_f64(),
        rate(fb_pages, fb_time)
    );
    if !have_gs {
        println!("ghostscript: not installed, no comparison");
        return;
    }
    println!(
        "ghostscript: {gs_pages} pages in {:.2} s = {:.1} pages/s, {gs_bytes} bytes",
        gs_time.as_secs_f64(),
        rate(gs_pages, gs_time)
    );
    // CPU time does not depend on how busy the machine is, wall time does.
    let per_page = |ticks: u64, pages: usize| ticks as f64 * 10.0 / pages.max(1) as f64;
    println!(
        "cpu per page: faxbox {:.1} ms, gs {:.1} ms, gs/faxbox {:.2}x",
        per_page(fb_cpu, fb_pages),
        per_page(gs_cpu, gs_pages),
        per_page(gs_cpu, gs_pages) / per_page(fb_cpu, fb_pages).max(1e-9)
    );
    println!(
        "speed-up: {:.2}x   size ratio faxbox/gs: {:.3}   agreement: {:.2} %",
        rate(fb_pages, fb_time) / rate(gs_pages, gs_time),
        fb_bytes as f64 / gs_bytes.max(1) as f64,
        if dark_sum == 0 {
            100.0
        } else {
            100.0 * agree_sum as f64 / dark_sum as f64
        }
    );
    let speed_up = rate(fb_pages, fb_time) / rate(gs_pages, gs_time);
    summary::record(
        "convert",
        &format!("PDF -> fax TIFF, {fb_pages} pages"),
        &format!("{:.1} pages/s", rate(fb_pages, fb_time)),
        &format!("gs {:.1} pages/s (target 3x)", rate(gs_pages, gs_time)),
        &format!("{speed_up:.2}x gs"),
    );
    summary::record(
        "convert",
        "bytes, all files",
        &format!("{fb_bytes} B"),
        &format!("gs {gs_bytes} B"),
        &format!("{:.3}x gs", fb_bytes as f64 / gs_bytes.max(1) as f64),
    );
    if let Some((ratio, file)) = worst_bytes {
        println!("largest against gs: {file} at {ratio:.3}x its bytes");
        summary::record(
            "convert",
            "bytes, largest file against gs",
            file,
            "gs, same file",
            &format!("{ratio:.3}x gs"),
        );
    }
}

/// CPU ticks (1/100 s, Linux's USER_HZ) used by this process and by its
/// waited-for children, from /proc/self/stat; zeros elsewhere.
struct CpuTicks {
    own: u64,
    children: u64,
}

fn cpu_ticks() -> CpuTicks {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').map(|f| f.parse().unwrap_or(0)).collect())
        .unwrap_or_default();
    // Fields 14-17 of proc(5): utime, stime, cutime, cstime; `rest` starts at 3.
    let at = |n: usize| fields.get(n - 3).copied().unwrap_or(0);
    CpuTicks {
        own: at(14) + at(15),
        children: at(16) + at(17),
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// (agreeing black pixels of both pages, black pixels of both pages), or
/// `None` when the pages differ in size.
fn agreement(a: &BitPage, b: &BitPage) -> Option<(u64, u64)> {
    if a.width != b.width || a.height != b.height {
        return None;
    }
    let near_a = dilate(a);
    let near_b = dilate(b);
    let covered = |p: &BitPage, near: &BitPage| -> u64 {
        p.rows
            .iter()
            .zip(&near.rows)
            .map(|(x, n)| u64::from((x & n).count_ones()))
            .sum()
    };
    Some((
        covered(a, &near_b) + covered(b, &near_a),
        a.black_pixels() + b.black_pixels(),
    ))
}

/// Each black pixel spread to its 3x3 neighbourhood.
fn dilate(p: &BitPage) -> BitPage {
    let s = p.stride();
    let mut horiz = p.clone();
    for y in 0..p.height as usize {
        let row = &p.rows[y * s..(y + 1) * s];
        for i in 0..s {
            let left = if i > 0 { row[i - 1] << 7 } else { 0 };
            let right = if i + 1 < s { row[i + 1] >> 7 } else { 0 };
            horiz.rows[y * s + i] = row[i] | (row[i] >> 1) | (row[i] << 1) | left | right;
        }
    }
    let mut out = horiz.clone();
    for y in 0..p.height as usize {
        for dy in [-1i64, 1] {
            let yy = y as i64 + dy;
            if yy < 0 || yy >= p.height as i64 {
                continue;
            }
            for i in 0..s {
                out.rows[y * s + i] |= horiz.rows[yy as usize * s + i];
            }
        }
    }
    out.clear_padding();
    out
}
