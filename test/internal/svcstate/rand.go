package svcstate

import (
	"crypto/rand"
	"encoding/hex"
	"math/big"
)

// RandHex is n random bytes in hex: names and secrets of a test run's own.
func RandHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// RandInt is a random number in [0, n).
func RandInt(n int64) int {
	v, err := rand.Int(rand.Reader, big.NewInt(n))
	if err != nil {
		panic(err)
	}
	return int(v.Int64())
}
