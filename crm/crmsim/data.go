package crmsim

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// Every record is derived from its tenant's size and its index, so a tenant
// of any size costs no memory: these tables and a hash are all there is.

var firstNames = []string{
	"Olivia", "Emma", "Ava", "Sophia", "Isabella", "Mia", "Charlotte", "Amelia", "Harper", "Evelyn",
	"Abigail", "Emily", "Ella", "Grace", "Chloe", "Zoe", "Lily", "Hannah", "Nora", "Priya",
	"Aisha", "Sofia", "Maya", "Leah", "Claire", "Ruby", "Freya", "Isla", "Megan", "Lauren",
	"Liam", "Noah", "James", "William", "Benjamin", "Lucas", "Henry", "Alexander", "Daniel", "Michael",
	"Ethan", "Jacob", "Samuel", "David", "Joseph", "Owen", "Oliver", "Thomas", "Ryan", "Nathan",
	"Arjun", "Mateo", "Diego", "Kai", "Rohan", "Callum", "Finn", "Jack", "Harry", "Elijah",
}

var lastNames = []string{
	"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
	"Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee",
	"Thompson", "White", "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King",
	"Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell", "Roberts",
	"Carter", "Phillips", "Evans", "Turner", "Patel", "Nguyen", "Kim", "Murphy", "O'Brien", "Bennett",
	"Hughes", "Foster", "Sullivan", "Russell", "Price", "Brooks", "Kelly", "Sanders", "Reyes", "Shah",
}

var emailDomains = []string{"gmail.com", "gmail.com", "gmail.com", "yahoo.com", "outlook.com", "icloud.com", "hotmail.com", "me.com"}

var areaCodes = []string{"212", "415", "312", "617", "503", "512", "303", "206", "704", "615", "404", "619", "773", "646", "720"}

type venue struct{ name, address string }

var venues = []venue{
	{"The Foundry", "42-38 9th St, Long Island City, NY 11101"},
	{"Carondelet House", "731 S Grand View St, Los Angeles, CA 90057"},
	{"The Lodge at Sea Cliff", "18 Prospect Ave, Sea Cliff, NY 11579"},
	{"Green Building", "452 Union St, Brooklyn, NY 11231"},
	{"Terrain at Styer's", "914 Baltimore Pike, Glen Mills, PA 19342"},
	{"Cedar Lakes Estate", "1 Cedar Lakes Dr, Port Jervis, NY 12771"},
	{"The Ruins", "570 Mercer St, Seattle, WA 98109"},
	{"Hotel Emma", "136 E Grayson St, San Antonio, TX 78215"},
	{"Pippin Hill Farm", "5022 Plank Rd, North Garden, VA 22959"},
	{"The Cotton Room", "1000 Hamlin St, Durham, NC 27701"},
	{"Blackberry Farm", "1471 W Millers Cove Rd, Walland, TN 37886"},
	{"Firestone Vineyard", "5017 Zaca Station Rd, Los Olivos, CA 93441"},
	{"Chicago Cultural Center", "78 E Washington St, Chicago, IL 60602"},
	{"Boston Public Library", "700 Boylston St, Boston, MA 02116"},
	{"The Brixton", "1200 Brixton Dr, Austin, TX 78745"},
	{"Denver Botanic Gardens", "1007 York St, Denver, CO 80206"},
	{"Chateau on the Lake", "415 N State Hwy 265, Branson, MO 65616"},
	{"Castle Hill Inn", "590 Ocean Dr, Newport, RI 02840"},
	{"Ravenswood Lodge", "88 Timberline Rd, Asheville, NC 28804"},
	{"The Glasshouse", "1 Willow Bank Ln, Portland, OR 97201"},
	{"Saint Louis Union Station", "1820 Market St, St. Louis, MO 63103"},
	{"Summerour Studio", "350 Mecaslin St NW, Atlanta, GA 30318"},
	{"Cape Cod Lighthouse Inn", "4 Lighthouse Inn Rd, West Dennis, MA 02670"},
	{"Hummingbird Nest Ranch", "2940 Kuehner Dr, Simi Valley, CA 93063"},
}

var leadSources = []string{"Instagram", "Google", "The Knot", "WeddingWire", "Referral", "Venue referral", "Facebook", "Pinterest", "Website", "Wedding fair"}

var jobTypes = []string{"Wedding", "Wedding", "Wedding", "Wedding", "Wedding", "Wedding", "Wedding", "Engagement", "Elopement", "Wedding"}

// monthWeights puts most weddings between May and October, as they are.
var monthWeights = [12]int{1, 1, 2, 4, 9, 12, 10, 11, 14, 13, 4, 3}

// The record kinds, part of every id so an id can be parsed back.
const (
	kindJob        byte = 1
	kindContact    byte = 2
	kindJobContact byte = 3
	kindEvent      byte = 4
	kindProject    byte = 5
	kindWorkspace  byte = 6
	kindMember     byte = 7
	kindVendor     byte = 8
	kindLookup     byte = 9
)

// idEpoch is the time in every id's timestamp part: ids sort by index.
var idEpoch = time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)

// hash64 is splitmix64 of the index mixed with a salt: cheap, well spread and
// the same on every machine.
func hash64(i int, salt uint64) uint64 {
	z := uint64(i)*0x9e3779b97f4a7c15 + salt*0xbf58476d1ce4e5b9 + 0x94d049bb133111eb
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func pick[T any](list []T, h uint64) T { return list[h%uint64(len(list))] }

// ulidFor is the Tave id of record i of a kind: its time part is idEpoch+i
// seconds, its entropy the kind and a hash, lower-cased as Tave sends them.
func ulidFor(kind byte, i int) string {
	var u ulid.ULID
	if err := u.SetTime(uint64(idEpoch.UnixMilli()) + uint64(i)*1000); err != nil {
		return ""
	}
	var e [10]byte
	e[0] = kind
	binary.BigEndian.PutUint64(e[1:9], hash64(i, uint64(kind)))
	e[9] = byte(hash64(i, 99))
	_ = u.SetEntropy(e[:])
	return strings.ToLower(u.String())
}

// parseULID returns the kind and index an id was made from.
func parseULID(id string) (byte, int, bool) {
	u, err := ulid.ParseStrict(strings.ToUpper(id))
	if err != nil {
		return 0, 0, false
	}
	ms := int64(u.Time()) - idEpoch.UnixMilli()
	if ms < 0 || ms%1000 != 0 {
		return 0, 0, false
	}
	kind, i := u.Entropy()[0], int(ms/1000)
	if ulidFor(kind, i) != strings.ToLower(id) {
		return 0, 0, false
	}
	return kind, i, true
}

// objectIDFor is the HoneyBook id (a BSON ObjectId) of record i of a kind.
func objectIDFor(kind byte, i int) string {
	var b [12]byte
	binary.BigEndian.PutUint32(b[0:4], uint32(idEpoch.Unix())+uint32(i))
	b[4] = kind
	h := hash64(i, uint64(kind)+100)
	binary.BigEndian.PutUint32(b[5:9], uint32(h))
	b[9], b[10], b[11] = byte(i>>16), byte(i>>8), byte(i)
	return hex.EncodeToString(b[:])
}

func parseObjectID(id string) (byte, int, bool) {
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != 12 {
		return 0, 0, false
	}
	i := int(binary.BigEndian.Uint32(b[0:4])) - int(idEpoch.Unix())
	if i < 0 || objectIDFor(b[4], i) != id {
		return 0, 0, false
	}
	return b[4], i, true
}

// TaveJobID is the id of the Tave job (and so of the client record) with
// index i, 0-based in creation order.
func TaveJobID(i int) string { return ulidFor(kindJob, i) }

// HoneyBookProjectID is the id of the HoneyBook project (the client record)
// with index i, 0-based in creation order.
func HoneyBookProjectID(i int) string { return objectIDFor(kindProject, i) }

// HoneyBookWorkspaceID is the id of the workspace of the HoneyBook project
// with index i.
func HoneyBookWorkspaceID(i int) string { return objectIDFor(kindWorkspace, i) }

// person is one partner of a couple.
type person struct {
	first, last, maiden, email string
	e164, formatted            string
}

// messKind says how a messy record is broken.
type messKind int

const (
	messNone messKind = iota
	messNoIdentity
	messBadEmail
	messBadDate
	messWrongType
)

func (m messKind) String() string {
	return [...]string{"", "missing name and email", "invalid email", "impossible date", "wrong type"}[m]
}

// record is everything the simulator knows about client record i at one
// moment; both APIs present it in their own shapes.
type record struct {
	index           int
	version         int // the tick it last changed in, 0 if never
	partners        [2]person
	eventDate       time.Time
	eventDateRaw    string // "" unless messy
	venue           venue
	jobType         string
	stage           string // lead | booked | fulfillment | completed
	closed          bool
	leadSource      string
	value           int64
	guestCount      int
	created         time.Time
	modified        time.Time
	inquiry, booked time.Time
	mess            messKind
}

func makePerson(i, p int, shareLast bool, sharedLast string) person {
	h := hash64(2*i+p, 7)
	first := pick(firstNames[:30], h)
	if p == 1 || h%5 == 0 {
		first = pick(firstNames, h>>8)
	}
	last := pick(lastNames, h>>16)
	if shareLast {
		last = sharedLast
	}
	domain := pick(emailDomains, h>>24)
	email := fmt.Sprintf("%s.%s%d@%s", strings.ToLower(first), strings.ToLower(strings.ReplaceAll(last, "'", "")), 2*i+p, domain)
	area := pick(areaCodes, h>>32)
	line := fmt.Sprintf("%04d", (2*i+p)%10000)
	exch := 200 + int((h>>40)%700)
	return person{
		first: first, last: last, email: email,
		e164:      fmt.Sprintf("+1%s%d%s", area, exch, line),
		formatted: fmt.Sprintf("(%s) %d-%s", area, exch, line),
	}
}

// eventDateFor is a Saturday in a month drawn from monthWeights, some 6 to 20
// months after the inquiry.
func eventDateFor(h uint64, inquiry time.Time) time.Time {
	total := 0
	for _, w := range monthWeights {
		total += w
	}
	r := int(h % uint64(total))
	month := 0
	for month = range monthWeights {
		if r < monthWeights[month] {
			break
		}
		r -= monthWeights[month]
	}
	target := inquiry.AddDate(0, 6+int((h>>8)%14), 0)
	year := target.Year()
	if time.Month(month+1) < target.Month() {
		year++
	}
	d := time.Date(year, time.Month(month+1), 1+int((h>>16)%22), 0, 0, 0, 0, time.UTC)
	for d.Weekday() != time.Saturday {
		d = d.AddDate(0, 0, 1)
	}
	return d
}
