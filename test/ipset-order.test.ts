/** ipset lists members in an order fixed by the set's header, so save → restore → save prints the same text. */
import t from 'tap';
import { systemNameDb } from '../compat/namedb';
import { formatElement, listingOrder, parseCreate, parseElements } from '../xlate/ipset';

const meta = parseCreate('a', 'hash:ip', ['initval', '0x1234abcd'], 0);
const members = parseElements('10.0.0.0/28', meta, systemNameDb).map((el) => ({ el }));
const text = (ms: typeof members, m = meta): string[] => listingOrder(ms, m).map((x) => formatElement(x.el, meta));

const forward = text(members);
t.same(text([...members].reverse()), forward, 'the order does not depend on the order members were added in');
t.same([...forward].sort(), members.map((m) => formatElement(m.el, meta)).sort(), 'every member is listed once');
t.not(forward.join(' '), text(members, { ...meta, initval: 0x0badcafe }).join(' '), 'another initval lists in another order (a hash order, not sorted)');
t.not(forward.join(' '), members.map((m) => formatElement(m.el, meta)).join(' '), 'not simply ascending');
