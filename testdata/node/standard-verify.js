// Verifies the Standard Webhooks headers with the official library, as a receiver would.
// Usage: node standard-verify.js <raw body file> <headers JSON file> <secret> [raw]
// The headers file holds {"webhook-id": "...", "webhook-timestamp": "...",
// "webhook-signature": "..."}. With "raw", the secret's bytes are the key (the library's
// {format: "raw"}); without it, the secret is whsec_ + base64, the library's default.
// Exits 0 and prints "valid" on success, else prints the library's error and exits 1.
const fs = require('fs');
const { Webhook } = require('standardwebhooks');

const [bodyFile, headersFile, secret, format] = process.argv.slice(2);
if (!bodyFile || !headersFile || secret === undefined) {
    console.error('usage: node standard-verify.js <raw body file> <headers JSON file> <secret> [raw]');
    process.exit(2);
}
const payload = fs.readFileSync(bodyFile);
const headers = JSON.parse(fs.readFileSync(headersFile, 'utf8'));
try {
    const wh = format === 'raw' ? new Webhook(secret, { format: 'raw' }) : new Webhook(secret);
    wh.verify(payload, headers);
} catch (err) {
    console.log('invalid: ' + err.message);
    process.exit(1);
}
console.log('valid');
