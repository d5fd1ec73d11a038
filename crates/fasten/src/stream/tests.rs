use super::*;

fn origin() -> Origin {
    Origin {
        service_id: "svc".into(),
        node_id: "n1".into(),
        tenant_id: None,
    }
}

#[test]
fn ring_keeps_the_newest() {
    let ring = Ring::new(3);
    for i in 0..5 {
        ring.push(Arc::new(i), 1);
    }
    let got: Vec<i32> = ring.newest(10, |_| true).iter().map(|v| **v).collect();
    assert_eq!(got, vec![4, 3, 2]);
    assert_eq!(ring.newest(1, |v| *v < 4).len(), 1);
    let off = Ring::new(0);
    off.push(Arc::new(1), 1);
    assert_eq!(off.len(), 0);
}

#[test]
fn ring_bytes_bound_as_well_as_rows() {
    // 1,000 rows allowed, 100 bytes: rows of 30 bytes keep three.
    let ring = Ring::with_max_bytes(1000, 100);
    for i in 0..10 {
        ring.push(Arc::new(i), 30);
    }
    let got: Vec<i32> = ring.newest(10, |_| true).iter().map(|v| **v).collect();
    assert_eq!(got, vec![9, 8, 7]);
    // A row larger than the whole bound is not kept (nor evicts others).
    ring.push(Arc::new(99), 101);
    assert_eq!(ring.len(), 3);
    // The real rows weigh what they hold: 10,000 api rows of 4 KiB
    // paths stay under the bound.
    let ring = Ring::new(10_000);
    let row = api_row_with_path(&"p".repeat(MAX_FIELD_BYTES));
    let weight = ApiRow::weight(&row);
    assert!(weight > MAX_FIELD_BYTES);
    let row = Arc::new(row);
    for _ in 0..10_000 {
        ring.push(Arc::clone(&row), weight);
    }
    assert!(ring.len() * weight <= MAX_RING_BYTES);
    assert_eq!(ring.len(), MAX_RING_BYTES / weight);
}

fn api_row_with_path(path: &str) -> ApiRow {
    let mut row = ApiRow::dropped(0, &origin());
    row.path = path.to_owned();
    row
}

#[test]
fn stdout_lines_are_one_object_with_the_stream_first() {
    let mut out = Vec::new();
    write_line(&mut out, "sys", &SysRow::dropped(3, &origin()));
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("{\"stream\":\"sys\",\"id\":"), "{text}");
    assert!(text.ends_with("}\n"));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["dropped"], 3);
    assert_eq!(v["level"], "WARN");
}

#[test]
fn a_full_queue_sheds_and_reports_the_count() {
    // A queue of one that nobody drains: the first row fits, the rest shed.
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let lane = Lane::<SysRow> {
        ring: Ring::new(10),
        tx: Some(tx),
        counters: Arc::default(),
        store_kind: None,
        table: None,
        copy: None,
    };
    for _ in 0..4 {
        lane.push(SysRow::dropped(0, &origin()));
    }
    let stats = lane.stats();
    assert_eq!((stats.pushed, stats.dropped, stats.ring_len), (4, 3, 4));
}
