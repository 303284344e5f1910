package geoip

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oschwald/geoip2-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/peba-go/peba"
)

// DefaultReloadInterval is the poll interval the service should use unless
// the operator chooses another one.
const DefaultReloadInterval = time.Minute

// Config names the database files. Every path is optional: an empty or
// missing file leaves PEBA's defaults for the fields it would provide.
type Config struct {
	CityPath    string // GeoIP2/GeoLite2/DB-IP City: location, and country if CountryPath gives none
	CountryPath string // GeoIP2/GeoLite2/DB-IP Country: country code and English name
	ASNPath     string // GeoLite2/DB-IP ASN: "AS<number> <organisation>"

	// ReloadInterval is how often the files' modification time and size are
	// polled; a changed file is loaded and swapped in. 0 disables reloading.
	ReloadInterval time.Duration

	// CacheSize bounds the lookup cache (entries). 0 means
	// DefaultCacheSize, a negative value disables the cache.
	CacheSize int
}

// FileStatus describes one configured database slot.
type FileStatus struct {
	Kind      string    // "city", "country" or "asn"
	Path      string    // configured path, "" if not configured
	Loaded    bool      // a database is in use for this slot
	Type      string    // database_type from the file's metadata, e.g. "DBIP-City-Lite"
	BuildTime time.Time // build_epoch from the file's metadata
	Err       string    // why the last load failed, "" if it did not
}

// DB answers GeoIP lookups from up to three MaxMind-format databases and
// reloads them when their files change. It is safe for concurrent use.
//
// Each database file is read into memory rather than memory-mapped. A
// mapping would be cheaper in RSS, but operators replace files in place (cp
// truncates first), and touching a truncated mapping raises SIGBUS, which
// kills the process. A reload builds a new immutable snapshot and swaps it in
// with one atomic store; lookups in flight keep using the snapshot they
// loaded, and the old buffers are freed by the garbage collector once no
// lookup references them, so there is no use-after-free and lookups take no
// lock.
type DB struct {
	logger *slog.Logger
	cur    atomic.Pointer[snapshot]

	mu        sync.Mutex // serialises reloads and guards slots
	slots     [3]slot
	cacheSize int

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

type slot struct {
	kind string
	path string
	file *dbFile // in use, nil if none
	err  error   // last load error
	bad  fileKey // the file version that failed, so it is not retried or logged every poll
}

// fileKey identifies a version of a file by modification time and size.
type fileKey struct {
	mtime time.Time
	size  int64
}

type dbFile struct {
	r   *maxminddb.Reader
	key fileKey
}

// snapshot is immutable once published; reloads replace it as a whole, which
// also drops the cache that belongs to the old data.
type snapshot struct {
	city, country, asn *maxminddb.Reader
	cache              *cache
}

// cityRecord and asnRecord hold only the fields PEBA uses (§6). Decoding
// into them rather than geoip2's full City model (eight languages of names
// for city, country, continent, subdivisions) made a three-database lookup
// 2-2.5x faster (measured: 1.6 µs against 3.4-4.1 µs). A Country
// database decodes into cityRecord too; Location stays zero.
type cityRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
		Names   struct {
			English string `maxminddb:"en"`
		} `maxminddb:"names"`
	} `maxminddb:"country"`
	// An absent coordinate decodes as 0, which is PEBA's default.
	Location struct {
		Latitude  float64 `maxminddb:"latitude"`
		Longitude float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
}

type asnRecord struct {
	Number uint   `maxminddb:"autonomous_system_number"`
	Org    string `maxminddb:"autonomous_system_organization"`
}

const (
	slotCity = iota
	slotCountry
	slotASN
)

// privateGeo is what PEBA reports for Python-private addresses (§6 step 3).
var privateGeo = peba.Geo{Country: "PIR", CountryName: "IANA Private IP Range", ASN: "IANA"}

// Open loads the configured databases and, if cfg.ReloadInterval > 0, starts
// polling them for changes. A path that is empty or names a missing file is
// not an error: Status reports it and the poller loads the file once it
// appears. A file that exists but cannot be used (corrupt, or a database of
// the wrong type for its slot) is an error, so that a misconfiguration is seen
// at startup. Close stops the poller.
func Open(cfg Config, logger *slog.Logger) (*DB, error) {
	if cfg.ReloadInterval < 0 {
		return nil, fmt.Errorf("cannot open geoip databases: negative reload interval %v", cfg.ReloadInterval)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db := &DB{
		logger:    logger,
		cacheSize: cfg.CacheSize,
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	if db.cacheSize == 0 {
		db.cacheSize = DefaultCacheSize
	}
	db.slots = [3]slot{
		slotCity:    {kind: "city", path: cfg.CityPath},
		slotCountry: {kind: "country", path: cfg.CountryPath},
		slotASN:     {kind: "asn", path: cfg.ASNPath},
	}
	db.mu.Lock()
	_, err := db.reloadLocked()
	db.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if cfg.ReloadInterval > 0 {
		go db.poll(cfg.ReloadInterval)
	} else {
		close(db.done)
	}
	return db, nil
}

// Close stops the poller. Lookups after Close return PEBA's defaults (or
// "PIR" for private addresses). It always returns nil.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		close(db.stop)
		<-db.done
		db.cur.Store(&snapshot{})
	})
	return nil
}

// Status describes the city, country and asn slots, in that order.
func (db *DB) Status() []FileStatus {
	db.mu.Lock()
	defer db.mu.Unlock()
	out := make([]FileStatus, 0, len(db.slots))
	for _, s := range db.slots {
		st := FileStatus{Kind: s.kind, Path: s.path, Loaded: s.file != nil}
		if s.file != nil {
			md := s.file.r.Metadata
			st.Type = md.DatabaseType
			st.BuildTime = md.BuildTime().UTC()
		}
		if s.err != nil {
			st.Err = s.err.Error()
		}
		out = append(out, st)
	}
	return out
}

func (db *DB) poll(every time.Duration) {
	defer close(db.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-t.C:
			db.Reload()
		}
	}
}

// Reload checks the files now and swaps in those that changed, as the poller
// does every ReloadInterval. It reports whether anything was swapped in. A
// file that fails to load leaves the previous data in use; the failure is
// logged once per file version and shown by Status.
func (db *DB) Reload() bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	select {
	case <-db.stop:
		return false // closed: keep the empty snapshot
	default:
	}
	changed, err := db.reloadLocked()
	if err != nil {
		db.logger.Warn("cannot reload geoip database, keeping the previous data", "err", err)
	}
	return changed
}

// reloadLocked loads every slot whose file changed since it was loaded and
// publishes a new snapshot if any did. It returns the first load error.
func (db *DB) reloadLocked() (changed bool, firstErr error) {
	for i := range db.slots {
		s := &db.slots[i]
		if s.path == "" {
			continue
		}
		f, err := load(s.kind, s.path, s.file, s.bad)
		switch {
		case errors.Is(err, errUnchanged):
		case errors.Is(err, os.ErrNotExist):
			// Missing is allowed (keep what we have: the operator may be
			// between a delete and a rename); record it for Status.
			s.err = err
		case err != nil:
			var le *loadError
			if errors.As(err, &le) {
				s.bad = le.key
			}
			s.err = err
			if firstErr == nil {
				firstErr = err
			}
		default:
			s.file, s.err, s.bad = f, nil, fileKey{}
			changed = true
			md := f.r.Metadata
			db.logger.Info("geoip database loaded", "kind", s.kind, "path", s.path,
				"type", md.DatabaseType, "build_time", md.BuildTime().UTC())
		}
	}
	if changed || db.cur.Load() == nil {
		next := &snapshot{cache: newCache(db.cacheSize)}
		if f := db.slots[slotCity].file; f != nil {
			next.city = f.r
		}
		if f := db.slots[slotCountry].file; f != nil {
			next.country = f.r
		}
		if f := db.slots[slotASN].file; f != nil {
			next.asn = f.r
		}
		db.cur.Store(next)
	}
	return changed, firstErr
}

var errUnchanged = errors.New("unchanged")

// loadError is a failure to use one version of a file.
type loadError struct {
	key fileKey
	err error
}

func (e *loadError) Error() string { return e.err.Error() }
func (e *loadError) Unwrap() error { return e.err }

// load reads path unless its version equals that of cur or bad (then it
// returns errUnchanged) and checks that it is a database of the given kind.
func load(kind, path string, cur *dbFile, bad fileKey) (*dbFile, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open %s database %s: %w", kind, path, err)
	}
	defer fh.Close()
	// Stat the open file, not the path, so the key matches the bytes read
	// even if the path is renamed over meanwhile.
	fi, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot stat %s database %s: %w", kind, path, err)
	}
	key := fileKey{mtime: fi.ModTime(), size: fi.Size()}
	if (cur != nil && cur.key == key) || bad == key {
		return nil, errUnchanged
	}
	buf, err := io.ReadAll(fh)
	if err != nil {
		return nil, &loadError{key, fmt.Errorf("cannot read %s database %s: %w", kind, path, err)}
	}
	// geoip2 knows which database types (GeoLite2, GeoIP2, DB-IP) carry
	// which records and refuses a lookup method the type does not support:
	// probe once so a file in the wrong slot fails here. Lookups then use
	// the maxminddb reader on the same bytes with smaller records.
	g, err := geoip2.OpenBytes(buf)
	if err == nil {
		probe := netip.IPv4Unspecified()
		switch kind {
		case "city":
			_, err = g.City(probe)
		case "country":
			_, err = g.Country(probe)
		case "asn":
			_, err = g.ASN(probe)
		}
	}
	if err != nil {
		return nil, &loadError{key, fmt.Errorf("cannot use %s database %s: %w", kind, path, err)}
	}
	r, err := maxminddb.OpenBytes(buf)
	if err != nil {
		return nil, &loadError{key, fmt.Errorf("cannot open %s database %s: %w", kind, path, err)}
	}
	return &dbFile{r: r, key: key}, nil
}

// Lookup returns what the databases say about ip, following PEBA §6:
//   - an invalid Addr gives peba.UnknownGeo ("-", "-", "-", 0, 0);
//   - IPv4-mapped IPv6 is unmapped first;
//   - a private address (IsPrivate) gives Country "PIR", CountryName
//     "IANA Private IP Range", ASN "IANA" and 0/0, whatever the databases say;
//   - otherwise each field comes from its database if present there, and
//     keeps the default if not: ASN is "AS<number> <organisation>" only when
//     both are known; Lat/Lon come from the City database; Country (ISO
//     code) and CountryName (English) come from the Country database, or
//     from the City database when the Country database has no country for
//     ip or is not loaded.
//
// Lookup never fails: database errors leave the defaults, as PEBA does.
func (db *DB) Lookup(ip netip.Addr) peba.Geo {
	if !ip.IsValid() {
		return peba.UnknownGeo
	}
	ip = ip.Unmap().WithZone("")
	if IsPrivate(ip) {
		return privateGeo
	}
	s := db.cur.Load()
	if g, ok := s.cache.get(ip); ok {
		return g
	}
	g := s.lookup(ip)
	s.cache.put(ip, g)
	return g
}

func (s *snapshot) lookup(ip netip.Addr) peba.Geo {
	g := peba.UnknownGeo
	haveCountry := false
	if s.country != nil {
		var c cityRecord
		if s.country.Lookup(ip).Decode(&c) == nil {
			haveCountry = setCountry(&g, c.Country.ISOCode, c.Country.Names.English)
		}
	}
	if s.city != nil {
		var c cityRecord
		if s.city.Lookup(ip).Decode(&c) == nil {
			if !haveCountry {
				setCountry(&g, c.Country.ISOCode, c.Country.Names.English)
			}
			// A damaged or crafted database may hold NaN, Inf or out-of-range
			// coordinates; they would make the event invalid (the whole batch
			// refused) or draw nonsense on the map. Such a location is unknown.
			if validLocation(c.Location.Latitude, c.Location.Longitude) {
				g.Lat, g.Lon = c.Location.Latitude, c.Location.Longitude
			}
		}
	}
	if s.asn != nil {
		var a asnRecord
		if s.asn.Lookup(ip).Decode(&a) == nil && a.Number != 0 && a.Org != "" {
			g.ASN = "AS" + strconv.FormatUint(uint64(a.Number), 10) + " " + a.Org
		}
	}
	return g
}

func setCountry(g *peba.Geo, iso, name string) bool {
	if iso != "" {
		g.Country = iso
	}
	if name != "" {
		g.CountryName = name
	}
	return iso != "" || name != ""
}

// validLocation reports whether lat/lon are finite coordinates on the globe.
func validLocation(lat, lon float64) bool {
	return lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180 // NaN fails every comparison
}
