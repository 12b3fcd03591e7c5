#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::*;

fn query(pairs: &[(&str, &str)]) -> Query {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn filters_match_fields_and_tags_as_neutron_does() {
    let item = json!({"id": "a", "name": "net", "router:external": false, "mtu": 1450,
                      "tags": ["kaas-cluster=u", "x"]});
    let check = |pairs: &[(&str, &str)], want: bool| {
        assert_eq!(matches(&item, &query(pairs)), want, "{pairs:?}");
    };
    check(&[], true);
    check(&[("name", "net")], true);
    check(&[("name", "other")], false);
    check(&[("name", "other"), ("name", "net")], true);
    check(&[("router:external", "False")], true);
    check(&[("router:external", "true")], false);
    check(&[("mtu", "1450")], true);
    check(&[("tags", "kaas-cluster=u")], true);
    check(&[("tags", "kaas-cluster=u,x")], true);
    check(&[("tags", "kaas-cluster=u,y")], false);
    check(&[("tags-any", "y,x")], true);
    check(&[("not-tags", "x")], false);
    check(&[("not-tags-any", "y")], true);
    // A field the item does not have filters nothing; paging keys are no filters.
    check(&[("device_owner", "network:router_interface")], true);
    check(&[("limit", "1"), ("marker", "zzz")], true);
}

#[test]
fn pages_link_to_the_next_with_limit_and_marker() {
    let items: Vec<Value> = (0..5).map(|i| json!({"id": format!("i{i}")})).collect();
    let url = "http://sim/network/v2.0/ports";
    let first = page(
        items.clone(),
        &query(&[("limit", "2"), ("tags", "a=b")]),
        "ports",
        url,
    );
    assert_eq!(first["ports"], json!([{"id": "i0"}, {"id": "i1"}]));
    let next = first["ports_links"][0]["href"].as_str().unwrap();
    assert_eq!(
        next,
        "http://sim/network/v2.0/ports?tags=a%3Db&limit=2&marker=i1"
    );
    let last = page(
        items.clone(),
        &query(&[("limit", "2"), ("marker", "i3")]),
        "ports",
        url,
    );
    assert_eq!(last["ports"], json!([{"id": "i4"}]));
    assert_eq!(last["ports_links"], json!([]));
    let all = page(items, &query(&[]), "ports", url);
    assert_eq!(all["ports"].as_array().unwrap().len(), 5);
}

#[test]
fn microversions_are_read_from_either_header() {
    let mut headers = HeaderMap::new();
    assert_eq!(microversion(&headers, "compute", (2, 95)), (2, 1));
    headers.insert(
        "openstack-api-version",
        HeaderValue::from_static("compute 2.64"),
    );
    assert_eq!(microversion(&headers, "compute", (2, 95)), (2, 64));
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-openstack-nova-api-version",
        HeaderValue::from_static("latest"),
    );
    assert_eq!(microversion(&headers, "compute", (2, 95)), (2, 95));
}
