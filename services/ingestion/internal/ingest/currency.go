package ingest

import "strings"

// iso4217Active lists the active ISO 4217 alphabetic codes accepted in Transaction.currency:
// ISO 4217 list one (current currency and funds), as amended up to 2026, minus XTS (reserved
// for testing) and XXX (no currency). Withdrawn codes are rejected, including recent ones:
// HRK (Croatia joined the euro, 2023), SLL (replaced by SLE), ZWL (replaced by ZWG, 2024), ANG
// (replaced by XCG, 2025), BGN (Bulgaria joined the euro, 2026), CUC, MRO, STD, VEF.
//
// Keep this list sorted; TestCurrencyList checks it. Update it when the ISO 4217 maintenance
// agency publishes an amendment that adds or withdraws a code.
const iso4217Active = `
AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BHD BIF BMD BND BOB BOV BRL BSD
BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK
DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF
IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP
LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD
NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD
SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD
TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB
XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XUA YER ZAR ZMW ZWG
`

// currencySet is a set of three-letter upper-case codes, indexed by their letters: a lookup
// is one array read, with no hashing and no allocation.
type currencySet [26 * 26 * 26 / 8]byte

// newCurrencySet parses a whitespace-separated list of codes.
func newCurrencySet(list string) *currencySet {
	var s currencySet
	for _, code := range strings.Fields(list) {
		if i, ok := currencyIndex(code); ok {
			s[i/8] |= 1 << (i % 8)
		}
	}
	return &s
}

// currencyIndex maps a code of three upper-case ASCII letters to 0..26³-1.
func currencyIndex(code string) (int, bool) {
	if len(code) != 3 {
		return 0, false
	}
	i := 0
	for j := range 3 {
		c := code[j]
		if c < 'A' || c > 'Z' {
			return 0, false
		}
		i = i*26 + int(c-'A')
	}
	return i, true
}

// has reports whether code is in the set.
func (s *currencySet) has(code string) bool {
	i, ok := currencyIndex(code)
	return ok && s[i/8]&(1<<(i%8)) != 0
}
