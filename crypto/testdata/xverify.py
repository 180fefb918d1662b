# Independent re-implementation of docs/format/keys.md in Python, checked
# against the golden files: proof that the spec alone is enough to read
# every format. Not run by CI (it needs the `cryptography` package, 44 or
# later, for Argon2id). Run from the repository root:
#
#   python3 crypto/testdata/xverify.py crypto/testdata/golden
import hashlib, hmac, struct, sys, os
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

G = sys.argv[1]
def rd(n): return open(os.path.join(G, n), 'rb').read()
def rotl(v, c): return ((v << c) & 0xffffffff) | (v >> (32 - c))
def qr(s, a, b, c, d):
    s[a]=(s[a]+s[b])&0xffffffff; s[d]=rotl(s[d]^s[a],16)
    s[c]=(s[c]+s[d])&0xffffffff; s[b]=rotl(s[b]^s[c],12)
    s[a]=(s[a]+s[b])&0xffffffff; s[d]=rotl(s[d]^s[a],8)
    s[c]=(s[c]+s[d])&0xffffffff; s[b]=rotl(s[b]^s[c],7)
def hchacha(key, n16):
    s = list(struct.unpack('<4I', b'expand 32-byte k')) + list(struct.unpack('<8I', key)) + list(struct.unpack('<4I', n16))
    for _ in range(10):
        qr(s,0,4,8,12); qr(s,1,5,9,13); qr(s,2,6,10,14); qr(s,3,7,11,15)
        qr(s,0,5,10,15); qr(s,1,6,11,12); qr(s,2,7,8,13); qr(s,3,4,9,14)
    return struct.pack('<8I', *(s[0:4] + s[12:16]))
def xopen(key, nonce, ct, ad):
    sub = hchacha(key, nonce[:16])
    return ChaCha20Poly1305(sub).decrypt(b'\0'*4 + nonce[16:], ct, ad)
def hkdf(ikm, salt, info):
    return HKDF(hashes.SHA256(), 32, salt if salt else None, info.encode()).derive(ikm)
def x25519(priv, pub): return X25519PrivateKey.from_private_bytes(priv).exchange(X25519PublicKey.from_public_bytes(pub))
def xpub(priv): return X25519PrivateKey.from_private_bytes(priv).public_key().public_bytes_raw()
def edpub(seed): return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
def edverify(pub, ctx, msg, sig): Ed25519PublicKey.from_public_bytes(pub).verify(sig, ctx.encode() + b'\0' + msg)

vec = {}
for l in rd('vectors.txt').decode().splitlines():
    if l.startswith('#'): continue
    k, v = l.split(': '); vec[k] = bytes.fromhex(v)

def keyfile(data, passphrase):
    assert data[:11] == b'larder-key\n' and data[11] == 1
    role, prot, kid = data[12], data[13], data[14:30]
    p = 30
    if prot == 1:
        t, m = struct.unpack('>II', data[30:38]); th = data[38]; salt = data[39:55]; p = 55
        key = Argon2id(salt=salt, length=32, iterations=t, lanes=th, memory_cost=m).derive(passphrase)
    else:
        assert prot == 2 and role == 2
        key = hashlib.sha256(b'larder key file v1 without passphrase').digest()
    nonce = data[p:p+24]; hdr = data[:p+24]
    return role, kid, xopen(key, nonce, data[p+24:], hdr)

def cert(b, master_pub):
    assert b[0] == ord('C') and b[1] == 1
    role = b[2]; kid = b[3:19]; issuer = b[19:35]; created = struct.unpack('>q', b[35:43])[0]
    sp = b[43:75]; bp = b[75:107]; n = b[107]; name = b[108:108+n]; sig = b[108+n:]
    assert len(sig) == 64
    edverify(master_pub, 'larder certificate v1', b[:108+n], sig)
    return dict(role=role, id=kid, issuer=issuer, created=created, sign=sp, box=bp, name=name.decode())

pw = b'larder golden passphrase'
role, kid, p = keyfile(rd('master.key'), pw)
assert role == 1 and kid == vec['master.id'] and len(p) == 177 + p[176]
mbox, abox, mseed = p[0:32], p[32:64], p[64:96]
poly = struct.unpack('>Q', p[96:104])[0]; cidkey = p[104:136]; idxkey = p[136:168]
assert xpub(mbox) == vec['master.box.public'] and xpub(abox) == vec['master.auditbox.public']
mpub = edpub(mseed); assert mpub == vec['master.sign.public']
assert cidkey == vec['chunkid.key']
print('master.key ok, poly %#x, name %r' % (poly, p[177:].decode()))

role, kid, p = keyfile(rd('write.key'), b'')
assert role == 2 and kid == vec['write.id']
assert struct.unpack('>Q', p[0:8])[0] == poly and p[8:40] == cidkey and p[40:72] == idxkey
assert p[72:104] == vec['master.box.public'] and p[104:136] == vec['master.auditbox.public'] and p[136:168] == mpub
wseed = p[168:200]; L = struct.unpack('>H', p[200:202])[0]; c = cert(p[202:202+L], mpub); assert len(p) == 202 + L
assert c['role'] == 2 and c['id'] == kid and c['sign'] == edpub(wseed) == vec['write.sign.public'] and c['box'] == bytes(32)
print('write.key ok, name %r' % c['name'])

role, kid, p = keyfile(rd('audit.key'), pw)
assert role == 3 and p[0:32] == abox and p[32:64] == idxkey and p[64:96] == vec['master.box.public'] and p[96:128] == mpub
L = struct.unpack('>H', p[160:162])[0]; c = cert(p[162:162+L], mpub)
assert c['role'] == 3 and c['id'] == kid and c['box'] == xpub(abox) and c['sign'] == edpub(p[128:160])
print('audit.key ok')

for n, r in [('master', 1), ('write', 2), ('audit', 3)]:
    c = cert(rd('certificate-%s.bin' % n), mpub); assert c['role'] == r
    if r == 1: assert c['id'] == c['issuer'] == vec['master.id'] and c['sign'] == mpub and c['box'] == vec['master.box.public']
print('certificates ok')
b = rd('revocation.bin'); assert b[0] == ord('R') and b[1] == 1 and b[2:18] == vec['write.id'] and b[18:34] == vec['master.id']
n = b[42]; edverify(mpub, 'larder revocation v1', b[:43+n], b[43+n:]); print('revocation ok, reason %r' % b[43:43+n].decode())

# session
E = vec['session.ephemeral.public']; M = vec['master.box.public']; A = vec['master.auditbox.public']
salt = E + M + A
assert hkdf(x25519(mbox, E), salt, 'larder session data v1') == vec['session.data.key']
assert hkdf(x25519(abox, E), salt, 'larder session meta v1') == vec['session.meta.key']
print('session ok')

# sealed
s = rd('sealed.bin'); assert s[0] == ord('S') and s[1] == 1; n = s[2]
for priv in (mbox, abox):
    R = xpub(priv); fk = None
    for i in range(n):
        st = s[3+64*i:3+64*(i+1)]; Ei = st[:32]
        wk = hkdf(x25519(priv, Ei), Ei + R, 'larder sealed x25519 v1')
        try: fk = ChaCha20Poly1305(wk).decrypt(b'\0'*12, st[32:], None); break
        except Exception: pass
    assert fk is not None and len(fk) == 16
    hl = 3 + 64*n + 24
    assert hmac.compare_digest(hmac.new(hkdf(fk, b'', 'larder sealed header v1'), s[:hl], 'sha256').digest(), s[hl:hl+32])
    pt = xopen(hkdf(fk, b'', 'larder sealed payload v1'), s[hl-24:hl], s[hl+32:], b'manifest 0001')
print('sealed ok: %r' % pt.decode())

# aead, chunk id, pad, signature
sealed = vec['aead.sealed']
assert xopen(vec['aead.key'], sealed[:24], sealed[24:], vec['aead.type'] + vec['aead.id']) == vec['aead.plaintext']
assert hmac.new(vec['chunkid.key'], vec['chunkid.data'], 'sha256').digest() == vec['chunkid.id']
def padme(L):
    if L < 2: return L
    E = L.bit_length() - 1; S = E.bit_length(); m = (1 << (E - S)) - 1
    return (L + m) & ~m
pi = vec['pad.input']; po = vec['pad.output']
assert po == struct.pack('>I', len(pi)) + pi + bytes(padme(4 + len(pi)) - 4 - len(pi))
edverify(vec['write.sign.public'], vec['sign.context'].decode(), vec['sign.message'], vec['sign.signature'])
print('aead, chunk id, padding, signature ok')
