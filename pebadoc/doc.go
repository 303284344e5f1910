// Package pebadoc converts events to and from PEBA's alert document, the
// JSON object PEBA stored in its Elasticsearch alert index (reference
// peba.md §4.9, §4.12, §5.1). It defines the NDJSON format that
// `peba export` writes and `peba import` reads: the backup and migration
// format of this service, and the way to bring data over from a PEBA
// installation. It also reads PEBA's users index (§5.5).
//
// # Lines
//
// A file is UTF-8 NDJSON: one JSON object per line (invalid UTF-8 in an
// event's strings is written as U+FFFD). Each line that
// MarshalEvent writes is a PEBA alert document, field for field, plus "_id"
// and the x_ fields below:
//
//	{"_id":"518ddeb1e5372e318cf15172fc32fae5","country":"PIR", ... ,"rawhttp":"-",
//	 "x_createTime":"2018-04-24T12:12:29.000000Z", ... ,"x_requests":[]}
//
// UnmarshalEvent reads those lines and also Elasticsearch documents as
// elasticdump or a _search scroll writes them:
//
//	{"_index":"ews-2018.04.24-1","_type":"Alert","_id":"518d...","_score":1,"_source":{...PEBA fields...}}
//
// (keys other than "_id"/"id" and "_source" are ignored). A line without
// "_source" is read as a flat document, so an export is a valid import.
//
// # PEBA fields
//
// The PEBA fields have PEBA's names, including the misspelt "recievedTime"
// and "targetport" (which holds the transport protocol), and PEBA's formats:
//
//   - createTime, recievedTime: "YYYY-MM-DD HH:MM:SS", UTC (§2.7). Import also
//     reads "YYYY-MM-DD", epoch milliseconds and RFC 3339, the other forms the
//     index mapping accepted.
//   - clientDomain: true for community data, false for private data.
//   - sourceEntryIp, targetEntryIp: the address, "" if none. IPv4-mapped IPv6
//     addresses are read as IPv4.
//   - sourceEntryPort, targetEntryPort: the port as a decimal string, "" if
//     none. PEBA stored what the sensor sent; text that is not a port 0..65535
//     (conpot's "undefined") or not an IP is kept in the event's Fields as
//     "_sourceEntryPort", "_targetEntryPort", "_sourceEntryIp" or
//     "_targetEntryIp" and written back on export.
//   - location, locationDestination: "lat , lon" with Python's str(float)
//     ("0.0 , 0.0", "51.2993 , 9.491"), see FormatLocation.
//   - additionalData: a JSON text string, as Python's json.dumps wrote PEBA's
//     dict (see PythonJSONDumps), e.g. "{\"protocol\": \"ssh\"}". Import also
//     accepts an object in its place; key order and repeats are kept.
//   - rawhttp: "-" when there is no decoded HTTP request. client: always "-".
//   - hostname "undefined", externalIP and internalIP "1.1.1.1" when the
//     event has no value: PEBA's initial values (§4.3).
//
// Missing or null fields read as PEBA's initial values (§4.3, §6):
// peerType "Unclassified", country, countryName, sourceEntryAS and their
// target twins "-", coordinates 0/0, clientDomain community; recievedTime
// defaults to createTime. createTime is required.
//
// # x_ fields
//
// PEBA's document loses some of what an event holds. The x_ fields carry it,
// under names PEBA never used, so that MarshalEvent followed by UnmarshalEvent
// gives back every field of peba.Event except Payload (the payload bytes
// live in the payload store). Where present, an x_ field wins over what the
// PEBA fields would give:
//
//   - x_createTime, x_recievedTime: RFC 3339 UTC with microseconds
//     ("2018-04-24T12:12:29.123456Z"). PEBA's format stops at seconds; both
//     stores keep microseconds, so exports truncate to microseconds.
//   - x_submitter: the user who delivered the event. PEBA kept only the
//     domain.
//   - x_origin: "ews", "hpfeeds", "import", ... Documents without it are
//     PEBA's and get "import".
//   - x_sensorUUID: the sensor's uuid AdditionalData, which PEBA dropped.
//   - x_payloadMD5: the event's payload md5. Without it the md5 is taken from
//     additionalData's payload_md5 when that is 32 hex digits, but an event's
//     md5 may come from elsewhere (or be absent while additionalData has one).
//   - x_fields: every AdditionalData element the sensor sent, as
//     [["meaning","text"], ...] in document order with repeats. PEBA kept
//     only a few.
//   - x_requests: every Request element except the payload bytes, as
//     [["type","text"], ...]. PEBA kept only the url.
//   - x_hostname, x_externalIP, x_internalIP: written only when the event's
//     value is empty and the PEBA field therefore shows PEBA's default.
//   - x_rawhttp: written only when rawhttp is literally "-", which the PEBA
//     field cannot tell from "no request".
//
// # Users
//
// UnmarshalUser reads one users-index document,
// {"_id": ..., "_source": {"peerName", "token", "getOnly", "community", "email"}},
// keeping PEBA's hex sha512 (or legacy md5) token hash so that imported users
// keep their tokens.
package pebadoc
