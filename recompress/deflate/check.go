package deflate

// tokenCheck compares an engine's symbols and block ends, as they are made,
// with those parsed from an original stream, so that a wrong candidate is
// dropped at its first wrong symbol instead of at its first output byte.
type tokenCheck struct {
	blocks []parsedBlock
	syms   []uint32 // the symbols of the parsed non-stored blocks, in order

	bi      int // current block
	si      int // next symbol in syms
	failed  bool
	done    bool // every parsed block was matched
	symbols int  // symbols checked so far
}

func (k *tokenCheck) symbol(c *compressor, s uint32) {
	if k.failed || k.done {
		return
	}
	k.symbols++
	b := &k.blocks[k.bi]
	if b.stored {
		return // the original kept no symbols for this block
	}
	if k.si >= b.symOff+b.nsyms || k.syms[k.si] != s {
		k.failed = true
		return
	}
	k.si++
}

func (k *tokenCheck) blockEnd(c *compressor, last bool) {
	if k.failed || k.done {
		return
	}
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
