// Package geoip enriches events with country, location and autonomous
// system from MaxMind-format (.mmdb) databases, with PEBA's rules
// (peba.md §6): "-" and 0/0 for unknown values, "PIR" for Python-private
// addresses (IsPrivate), "AS<number> <organisation>" for the AS.
//
// # Where to get databases
//
// Three files can be configured, each optional: City (location, and
// country), Country and ASN. Two free sources work:
//
//   - DB-IP Lite (https://db-ip.com/db/lite.php): no account or key. Monthly
//     files, usually on the 1st: dbip-city-lite-YYYY-MM.mmdb.gz,
//     dbip-country-lite-YYYY-MM.mmdb.gz and dbip-asn-lite-YYYY-MM.mmdb.gz
//     (gunzip before use). Licence CC BY 4.0: attribution is required, and
//     web pages showing the data must link back:
//     <a href='https://db-ip.com'>IP Geolocation by DB-IP</a>.
//     The City Lite file also carries the country, so City + ASN suffice.
//   - MaxMind GeoLite2 (GeoLite2-City, -Country, -ASN): needs a free
//     account and licence key (since 2019-12-30); MaxMind's geoipupdate
//     tool fetches and replaces the files. GeoLite2 EULA.
//
// # Replacing files
//
// The DB polls each file's modification time and size and loads a changed
// file into memory (see DB), so files may be replaced in any way; a file that
// is half-written when polled fails to load and the previous data stays in
// use until the next poll. Writing a temporary file and renaming it over the
// old one (as geoipupdate does) avoids even that.
package geoip
