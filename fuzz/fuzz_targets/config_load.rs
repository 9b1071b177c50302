//! A configuration file (YAML or JSON) through `spyder_config::load`: parsing, key
//! table and alias resolution, typing and validation of every value, the combination
//! checks and the derived probe settings. The same text, when it is JSON, also goes
//! through `Config::patched` as a `PATCH /api/v1/config` body.
//!
//! Input: one selector byte (bit 0: YAML or JSON file), then the file's text.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use spyder_config::{Config, Origin, Sources, load};

struct Fixture {
    _dir: PathBuf,
    yaml: PathBuf,
    json: PathBuf,
    base: Config,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("spyder-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let base = load(&Sources::default()).expect("defaults load").config;
        Fixture {
            yaml: dir.join("spyder.yaml"),
            json: dir.join("spyder.json"),
            _dir: dir,
            base,
        }
    })
}

fn exercise(config: &Config) {
    let _ = config.redacted();
    let _ = serde_json::to_string(config);
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, text)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let path = if selector & 1 == 0 { &f.yaml } else { &f.json };
    if std::fs::write(path, text).is_err() {
        return;
    }
    let sources = Sources {
        file: Some(path.clone()),
        env: Vec::new(),
        flags: Vec::new(),
    };
    if let Ok(loaded) = load(&sources) {
        exercise(&loaded.config);
    }
    if let Ok(changes) = serde_json::from_slice::<serde_json::Value>(text)
        && let Ok(patched) = f.base.patched(&changes, Origin::Api)
    {
        exercise(&patched.config);
    }
});
