package deflate

// tokenCheck compares an engine's symbols and block ends, as they are made,
// with those parsed from an original stream, so that a wrong candidate is
// dropped at its first wrong symbol instead of at its first output byte.
type tokenCheck struct {
	blocks []parsedBlock
	syms   []uint32 // the symbols of the parsed non-stored blocks, in order

	bi      int // current block
	si      int // next symbol in syms
	seen    int // symbols of the compressor's current block already checked
	failed  bool
	done    bool // every parsed block was matched
	symbols int  // symbols checked so far
}

// scan checks the symbols the compressor buffered since the last scan.
// The compressor calls it at each block end; Identify also calls it as
// input goes in, so a wrong candidate stops early.
func (k *tokenCheck) scan(c *compressor) {
	if k.failed || k.done {
		return
	}
	b := &k.blocks[k.bi]
	if b.stored {
		k.seen = c.nsyms // the original kept no symbols for this block
		return
	}
	for _, s := range c.syms[k.seen:c.nsyms] {
		if k.si >= b.symOff+b.nsyms || k.syms[k.si] != s {
			k.failed = true
			return
		}
		k.si++
		k.symbols++
	}
	k.seen = c.nsyms
}

func (k *tokenCheck) blockEnd(c *compressor, last bool) {
	k.scan(c)
	if k.failed || k.done {
		return
	}
	k.seen = 0
	b := &k.blocks[k.bi]
	if b.final != last {
		k.failed = true
		return
	}
	if b.stored {
		if c.strstart-c.blockStart != b.inLen {
			k.failed = true
			return
		}
	} else if k.si != b.symOff+b.nsyms {
		k.failed = true
		return
	}
	k.bi++
	// GNU gzip --rsyncable pads to a byte boundary with an empty stored
	// block; the engine writes it within the same flush.
	for k.bi < len(k.blocks) && k.blocks[k.bi].stored && k.blocks[k.bi].inLen == 0 && !k.blocks[k.bi].final {
		k.bi++
	}
	if k.bi < len(k.blocks) {
		k.si = k.blocks[k.bi].symOff
	} else {
		k.done = true
	}
}
