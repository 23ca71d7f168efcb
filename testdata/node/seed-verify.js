// Verifies X-Webhook-Signature exactly as the seed documentation tells receivers to: the
// function below is copied verbatim from the seed's "Signature Verification" JavaScript
// snippet. Usage: node seed-verify.js <raw body file> <signature> <secret>
// Exits 0 and prints "valid" when the signature verifies, else prints why and exits 1.

// --- seed snippet, verbatim ---
const crypto = require('crypto');

function verifySignature(payload, signature, secret) {
    const expected = crypto
        .createHmac('sha256', secret)
        .update(payload)
        .digest('hex');
    return crypto.timingSafeEqual(
        Buffer.from(expected),
        Buffer.from(signature)
    );
}
// --- end of seed snippet ---

const fs = require('fs');

const [bodyFile, signature, secret] = process.argv.slice(2);
if (!bodyFile || signature === undefined || secret === undefined) {
    console.error('usage: node seed-verify.js <raw body file> <signature> <secret>');
    process.exit(2);
}
// The raw bytes as received, never re-encoded: that is what the signature covers.
const payload = fs.readFileSync(bodyFile);
let ok = false;
try {
    ok = verifySignature(payload, signature, secret);
} catch (err) {
    // timingSafeEqual throws when the lengths differ: a wrong signature, not a crash.
    console.log('invalid: ' + err.message);
    process.exit(1);
}
console.log(ok ? 'valid' : 'invalid');
process.exit(ok ? 0 : 1);
