import t from 'tap';
import { bodyKind, parseMediaType } from '../../src/input/media-type.ts';

t.test('reads type and subtype case-insensitively', async (t) => {
  const media = parseMediaType('Application/JSON');
  t.equal(media.type, 'application');
  t.equal(media.subtype, 'json');
  t.equal(bodyKind(media), 'json');
  t.equal(bodyKind(parseMediaType('APPLICATION/X-WWW-FORM-URLENCODED')), 'form');
  t.equal(bodyKind(parseMediaType('Multipart/Form-Data; boundary=x')), 'multipart');
});

// A substring matcher would call this JSON; RFC 9110 §8.3.1 says the type is text/plain.
t.test('never takes a parameter for the type', async (t) => {
  t.equal(bodyKind(parseMediaType('text/plain; x="application/json"')), 'other');
  // "/" is not a token character: unquoted, the parameter is malformed (Go's mime errors too).
  t.throws(() => parseMediaType('text/plain; x=application/json'), { code: 'TG_ERR_UNSUPPORTED_MEDIA' });
  t.equal(bodyKind(parseMediaType('application/jsonp')), 'other');
  t.equal(bodyKind(parseMediaType('application/json-seq')), 'other');
});

t.test('reads any +json structured suffix as JSON (RFC 6839)', async (t) => {
  t.equal(bodyKind(parseMediaType('application/vnd.api+json')), 'json');
  t.equal(bodyKind(parseMediaType('application/merge-patch+JSON; charset=utf-8')), 'json');
  t.equal(bodyKind(parseMediaType('text/json')), 'json');
  t.equal(bodyKind(parseMediaType('application/vnd.a+xml')), 'other');
  t.equal(bodyKind(undefined), 'other');
});

t.test('reads quoted parameter values with quoted-pairs and keeps their case', async (t) => {
  const media = parseMediaType('multipart/form-data ; Boundary="a\\"b;c" ;charset=UTF-8 ');
  t.equal(media.parameters.get('boundary'), 'a"b;c');
  t.equal(media.parameters.get('charset'), 'UTF-8');
  t.equal(parseMediaType('a/b;;c=d;').parameters.get('c'), 'd');
});

t.test('refuses a malformed content-type with TG_ERR_UNSUPPORTED_MEDIA', async (t) => {
  for (const value of [
    '',
    'json',
    'application/',
    '/json',
    'application/json, text/plain',
    'application/json; charset',
    'application/json; charset =utf-8',
    'application/json; charset= utf-8',
    'application/json; charset=',
    'application/json; charset="utf-8',
    'application/json; charset=utf-8; charset=latin1',
    'application/json garbage',
    'application/json; a="\u0001"',
    'appli cation/json',
  ]) {
    t.throws(() => parseMediaType(value), { code: 'TG_ERR_UNSUPPORTED_MEDIA' }, JSON.stringify(value));
  }
});
