package sim

import (
	"math"
	"math/rand/v2"
	"strconv"
)

type city struct {
	name     string
	country  string
	currency string
	lat, lon float64
	weight   float64 // share of account homes
}

// cities is the sim's geography (approximate city-centre coordinates).
var cities = [...]city{
	{"berlin", "DE", "EUR", 52.52, 13.405, 3},
	{"munich", "DE", "EUR", 48.137, 11.575, 2},
	{"paris", "FR", "EUR", 48.857, 2.352, 3},
	{"madrid", "ES", "EUR", 40.417, -3.704, 2},
	{"rome", "IT", "EUR", 41.903, 12.496, 2},
	{"amsterdam", "NL", "EUR", 52.368, 4.904, 1.5},
	{"warsaw", "PL", "PLN", 52.230, 21.012, 1.5},
	{"stockholm", "SE", "SEK", 59.329, 18.069, 1},
	{"london", "GB", "GBP", 51.507, -0.128, 3},
	{"dublin", "IE", "EUR", 53.350, -6.260, 1},
	{"new_york", "US", "USD", 40.713, -74.006, 3},
	{"chicago", "US", "USD", 41.878, -87.630, 2},
	{"san_francisco", "US", "USD", 37.775, -122.419, 2},
	{"toronto", "CA", "CAD", 43.653, -79.383, 1.5},
	{"mexico_city", "MX", "MXN", 19.433, -99.133, 1},
	{"sao_paulo", "BR", "BRL", -23.551, -46.633, 1.5},
	{"lagos", "NG", "NGN", 6.524, 3.379, 0.5},
	{"cairo", "EG", "EGP", 30.044, 31.236, 0.5},
	{"dubai", "AE", "AED", 25.205, 55.271, 0.5},
	{"mumbai", "IN", "INR", 19.076, 72.878, 1},
	{"singapore", "SG", "SGD", 1.352, 103.820, 1},
	{"tokyo", "JP", "JPY", 35.676, 139.650, 2},
	{"sydney", "AU", "AUD", -33.869, 151.209, 1},
	{"moscow", "RU", "RUB", 55.756, 37.617, 0.5},
}

type category struct {
	name     string
	risky    bool    // favoured by fraudsters
	online   float64 // share of online merchants in the category
	priceMul float64 // typical ticket relative to the account's mean
}

var categories = [...]category{
	{"grocery", false, 0.1, 0.8},
	{"restaurant", false, 0.05, 1},
	{"fuel", false, 0, 1.2},
	{"pharmacy", false, 0.2, 0.7},
	{"clothing", false, 0.5, 1.5},
	{"travel", false, 0.8, 3},
	{"entertainment", false, 0.5, 1},
	{"online_marketplace", false, 1, 1.2},
	{"electronics", true, 0.6, 2.5},
	{"jewelry", true, 0.3, 3},
	{"gift_cards", true, 0.9, 1.5},
	{"digital_goods", true, 1, 0.6},
}

const (
	channelPOS = iota
	channelWeb
	channelApp
)

// channelNames are the protobuf Channel enum names, as protojson writes and reads them.
var channelNames = [...]string{"CHANNEL_POS", "CHANNEL_ONLINE", "CHANNEL_MOBILE"}

type merchant struct {
	id       string
	category int
	city     int // -1 for online merchants
}

type account struct {
	id          string
	home        int
	lat, lon    float64
	mu, sigma   float64 // log-normal amount parameters
	peakHour    float64
	halfWidth   float64 // usual hours: |hour-peak| <= halfWidth
	rate        float64 // legitimate tx per second
	proposal    float64 // proposal rate for hour thinning
	devices     []string
	merchants   []int32
	channelCum  [3]float64
	tripCity    int
	tripUntil   int64
	newDevCount int
	spreeLeft   int // purchases left in a shopping spree
}

// offHourAccept is the acceptance probability of a legitimate transaction
// outside the account's usual hours.
const offHourAccept = 0.1

type world struct {
	merchants        []merchant
	cityMerchants    [][]int32 // POS merchants per city
	onlineMerchants  []int32
	riskyMerchants   []int32 // risky categories, online or not
	riskyOnline      []int32
	splurgeMerchants []int32 // risky categories and travel: big-ticket purchases
	accounts         []account
	fraudDevices     []string
	cityCum          []float64
	totalRate        float64 // sum of legitimate rates, per second
}

func newWorld(cfg Config, rng *rand.Rand) *world {
	w := &world{cityMerchants: make([][]int32, len(cities))}
	var cum float64
	for _, c := range cities {
		cum += c.weight
		w.cityCum = append(w.cityCum, cum)
	}
	w.merchants = make([]merchant, cfg.Merchants)
	for i := range w.merchants {
		cat := rng.IntN(len(categories))
		m := merchant{id: "m-" + pad(i, 6), category: cat, city: -1}
		if rng.Float64() >= categories[cat].online {
			m.city = w.pickCity(rng)
			w.cityMerchants[m.city] = append(w.cityMerchants[m.city], int32(i))
		} else {
			w.onlineMerchants = append(w.onlineMerchants, int32(i))
		}
		if categories[cat].risky || categories[cat].name == "travel" {
			w.splurgeMerchants = append(w.splurgeMerchants, int32(i))
		}
		if categories[cat].risky {
			w.riskyMerchants = append(w.riskyMerchants, int32(i))
			if m.city < 0 {
				w.riskyOnline = append(w.riskyOnline, int32(i))
			}
		}
		w.merchants[i] = m
	}
	// Guarantee every list is non-empty for small configurations.
	for c := range w.cityMerchants {
		if len(w.cityMerchants[c]) == 0 {
			w.cityMerchants[c] = append(w.cityMerchants[c], int32(rng.IntN(len(w.merchants))))
		}
	}
	if len(w.onlineMerchants) == 0 {
		w.onlineMerchants = append(w.onlineMerchants, 0)
	}
	if len(w.riskyMerchants) == 0 {
		w.riskyMerchants = append(w.riskyMerchants, 0)
	}
	if len(w.splurgeMerchants) == 0 {
		w.splurgeMerchants = append(w.splurgeMerchants, 0)
	}
	if len(w.riskyOnline) == 0 {
		w.riskyOnline = w.riskyMerchants
	}

	w.fraudDevices = make([]string, 300)
	for i := range w.fraudDevices {
		w.fraudDevices[i] = "fdev-" + pad(i, 5)
	}

	w.accounts = make([]account, cfg.Accounts)
	for i := range w.accounts {
		a := &w.accounts[i]
		a.id = "acct-" + pad(i, 7)
		a.home = w.pickCity(rng)
		a.lat, a.lon = jitter(rng, cities[a.home].lat, cities[a.home].lon, 15)
		a.mu = math.Log(40) + 0.6*rng.NormFloat64()
		a.sigma = 0.4 + 0.6*rng.Float64()
		a.peakHour = math.Mod(15+3*rng.NormFloat64()+48, 24)
		a.halfWidth = 3 + 3*rng.Float64()
		a.rate = cfg.TxPerAccountPerDay * math.Exp(0.5*rng.NormFloat64()-0.125) / 86400
		accept := (2*a.halfWidth + offHourAccept*(24-2*a.halfWidth)) / 24
		a.proposal = a.rate / accept
		w.totalRate += a.rate
		nd := 1 + rng.IntN(3)
		for k := range nd {
			a.devices = append(a.devices, "dev-"+pad(i, 7)+"-"+strconv.Itoa(k))
		}
		nm := 5 + rng.IntN(11)
		for range nm {
			if rng.Float64() < 0.3 {
				a.merchants = append(a.merchants, w.onlineMerchants[rng.IntN(len(w.onlineMerchants))])
			} else {
				cm := w.cityMerchants[a.home]
				a.merchants = append(a.merchants, cm[rng.IntN(len(cm))])
			}
		}
		pos := 0.4 + 0.4*rng.Float64()
		web := (1 - pos) * rng.Float64()
		a.channelCum = [3]float64{pos, pos + web, 1}
		a.tripCity = -1
	}
	return w
}

func (w *world) pickCity(rng *rand.Rand) int {
	x := rng.Float64() * w.cityCum[len(w.cityCum)-1]
	for i, c := range w.cityCum {
		if x < c {
			return i
		}
	}
	return len(w.cityCum) - 1
}

// jitter returns a point uniformly within about km of (lat, lon).
func jitter(rng *rand.Rand, lat, lon, km float64) (float64, float64) {
	r := km * math.Sqrt(rng.Float64())
	th := 2 * math.Pi * rng.Float64()
	dlat := r * math.Cos(th) / 111.2
	dlon := r * math.Sin(th) / (111.2 * math.Max(math.Cos(lat*math.Pi/180), 0.1))
	return lat + dlat, wrapLon(lon + dlon)
}

func wrapLon(lon float64) float64 {
	for lon > 180 {
		lon -= 360
	}
	for lon < -180 {
		lon += 360
	}
	return lon
}

func distanceKm(lat1, lon1, lat2, lon2 float64) float64 {
	const r = math.Pi / 180
	dlat, dlon := (lat2-lat1)*r, (lon2-lon1)*r
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*r)*math.Cos(lat2*r)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * 6371.0088 * math.Asin(math.Min(1, math.Sqrt(a)))
}

func pad(i, width int) string {
	s := strconv.Itoa(i)
	for len(s) < width {
		s = "0" + s
	}
	return s
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }
