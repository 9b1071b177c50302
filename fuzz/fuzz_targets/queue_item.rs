//! A raw Redis queue item (`{"host":…,"ts":…,"attempt":…}` from any producer) through
//! `QueueItem::decode`: accepted items keep their text byte-exact and a normalised host.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spyder_probe::model::HostName;
use spyder_queue::QueueItem;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(item) = QueueItem::decode(raw) {
        assert_eq!(item.raw(), raw, "raw text not kept byte-exact");
        // The host is already normalised: normalising again changes nothing.
        let again = HostName::from_input(item.host.as_str()).expect("a normalised host re-parses");
        assert_eq!(again, item.host);
        // A fresh item for that host decodes back to itself.
        let fresh = QueueItem::new(item.host.clone(), item.ts);
        assert_eq!(
            QueueItem::decode(fresh.raw()).expect("own items decode"),
            fresh
        );
    }
});
