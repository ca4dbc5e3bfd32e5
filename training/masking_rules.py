"""Rule masking: find the key information in a request and rewrite the request without some of it. Pure.

Key information is what a user knows and a model cannot guess: numbers, amounts, dates, durations, named
people, places and organisations, and explicit constraints ("must", "cannot", "only", "please include").
Each is one atomic fact (one slot, one value); the value is the exact span of the full request.

Removal is grammatical, smallest first, and checked: a hyphenated modifier ("a 12-day trip" → "a trip"), an
adjunct phrase ("on April 2", "in the Salinas Valley", "this fall"), else the whole clause (with the clauses
that hang on it: ", which …", ", because …"), else the whole sentence. A rewrite that would leave a
dangling word ("The budget is capped.") escalates to the next level. The sentence that asks for the
deliverable is never removed; only modifiers and phrases inside it may go.

Hand-written rules rather than a parser: the official spaCy English models are not published on PyPI (the
only registry this project can reach), and a reproducible dataset wants rules that a diff can review."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from .facts import Fact

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|"
    r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_WEEKDAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)s?"
_NUMWORD = (
    r"(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
    r"eighteen|twenty|thirty|forty|fifty|sixty|hundred|a dozen|a few|several|a couple of)"
)
_AMOUNT = r"\d+(?:,\d{3})*(?:\.\d+)?"
_DIGITS = rf"(?<![\d.,$£€-]){_AMOUNT}(?![\d.]*\.\d)"
_NUM = rf"(?:{_DIGITS}|{_NUMWORD}|one)"
_UNIT = r"(?:minute|hour|day|night|week|month|quarter|year|semester|session|period|weekend|second)s?"
_APPROX = (
    r"(?:(?:about|around|roughly|approximately|nearly|almost|over|under|up to|at least|at most|"
    r"more than|less than|fewer than|no more than|just over|just under)\s+)?"
)
_MONEY = (
    rf"(?:[$£€]\s?{_AMOUNT}(?:\s?(?:million|billion|k|m|M|bn)\b)?(?:\s?(?:ARR|GMV))?"
    rf"(?:\s?(?:/\s?month|/\s?year|a (?:day|bag|month|year|head|person)|per (?:day|month|year|person|head)))?"
    r"(?:\s(?:flat fee|sign-up bonus))?)"
)

# (category, pattern). Order matters only for ties; overlaps keep the longest span.
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("amount", re.compile(_APPROX + _MONEY)),
    ("amount", re.compile(rf"{_APPROX}{_DIGITS}\s?(?:dollars|euros|pounds)\b", re.I)),
    ("percentage", re.compile(rf"{_APPROX}{_DIGITS}\s?%(?:\s(?:to|and)\s{_DIGITS}\s?%)?")),
    ("ratio", re.compile(r"\b\d+:\d+(?=\s+(?:cash\s+)?(?:match|ratio))")),
    (
        "time",
        re.compile(
            r"\b\d{1,2}(?::\d{2})?\s?(?:a\.m\.|p\.m\.|am\b|pm\b)"
            r"|\b\d{1,2}:\d{2}(?:\s?(?:to|–|-)\s?\d{1,2}:\d{2})?(?:\s?UTC)?"
        ),
    ),
    (
        "date",
        re.compile(
            rf"\b(?:{_WEEKDAY},?\s+)?(?:(?:early|mid|late)[- ])?{_MONTH}\b(?:\s\d{{1,2}}(?:st|nd|rd|th)?\b)?"
            rf"(?:,?\s(?:19|20)\d\d\b)?"
            rf"|\b(?:the\s)?(?:first|second|third|last)\sweek\sof\s{_MONTH}\b"
            rf"|\b(?:last|next|this)\s(?:{_WEEKDAY}|fall|spring|summer|winter|year|month|week|quarter)(?:'s)?"
            rf"|\b(?:in|by)\s(?:a|one|two|three|four|five|six)\s(?:month|week|day)s?\b"
            rf"|\b(?:after|before|since|from|in)\s(?:19|20)\d\d(?:\sonward)?\b"
            rf"|\b(?:19|20)\d\d(?:\s?[–-]\s?(?:19|20)?\d\d)\b"
            rf"|\bQ[1-4]\b"
            rf"|\b(?:Labor Day|Memorial Day|Thanksgiving|Christmas|Easter)(?:\sweekend)?\b"
            rf"|\b(?:spring|fall|winter|summer)\sbreak\b"
            rf"|\bon\s{_WEEKDAY}\b"
        ),
    ),
    (
        "duration",
        re.compile(
            rf"{_APPROX}\b{_NUM}(?:[- ](?:and a half[- ])?){_UNIT}(?:[- ]long)?\b(?!-)"
            rf"|\b(?:year|month|week|day)-long\b"
            rf"|\b(?:twice|once|three times|four times|five times)\s(?:a|per)\s(?:day|week|month|year)\b"
        ),
    ),
    (
        "length",
        re.compile(rf"{_APPROX}\b{_NUM}[- ](?:word|page|slide)s?(?:\s(?:limit|cap|max|maximum))?\b", re.I),
    ),
    ("age", re.compile(r"\bages?\s\d+(?:\s(?:to|and|-|–)\s\d+)?|\b\d+-year-old\b|\bunder\s\d+\b(?!\s?%)")),
    ("version", re.compile(r"\b(?:version\s)?\d+\.\d+(?:\.\d+)+\b|\bversion\s\d+(?:\.\d+)*")),
    ("schedule", re.compile(r"\b(?:[Ss]essions?|[Ww]eeks?|[Uu]nits?|[Dd]ays?)\s\d+(?:\s(?:and|to|-|–)\s\d+)?\b")),
    ("name", re.compile(r"\"[^\"]{3,80}\"|“[^”]{3,80}”")),
    (
        "count",
        re.compile(
            rf"{_APPROX}\b(?:{_DIGITS}(?:\s?(?:to|–|-)\s?{_DIGITS})?|{_NUMWORD})"
            rf"(?!\s{_UNIT}\b|[- ](?:word|page|slide))"
            r"(?:\s(?!(?:and|or|to|of|in|on|at|for|with|by|the|a|an|from|per|than|over|after|before|because|"
            r"may|might|will|would|can|could|should|must|is|are|was|were|has|have|had|as|including|failed|"
            r"open|more|less|who|that|which|each|every|total|combined|plus|times|worth)\b)(?:[a-z][\w'-]*|[A-Z]{2,}s?\b)){1,2}"
        ),
    ),
]
_CONSTRAINT = re.compile(
    r"\b(?:must(?:n't| not)?|cannot|can't|can not|don't want|do not want|doesn't want|won't|shouldn't|"
    r"should not|has to|have to|needs? to|is required|are required|requires|required|non-negotiable|"
    r"avoid|exclude|excluding|not allowed|never|is out of scope|are out of scope|"
    r"is a must|are musts|no more than)\b|\bonly(?=[.,;]|$)",
    re.I,
)
_REQUIREMENT = re.compile(r"^(?:please\s+)?(?:also\s+)?(?:include|cover|add|address|keep|exclude|avoid)\b", re.I)
_NAME_WORD = r"(?:[A-Z][\w&-]*(?:\.[A-Za-z]+)*(?:'s(?=\s[A-Z]))?\+?|[a-z]+[A-Z][\w-]*)"
_ENTITY = re.compile(
    rf"\b{_NAME_WORD}(?:\s(?:(?:(?:of|for|de)(?:\sthe)?|the|and|&|v\.)\s)?"
    rf"(?:{_NAME_WORD}|\d+[A-Za-z]?(?:[.:]\d+)*(?:\(\d+\))?\+?|[IVX]+\b))*"
)
# Capitalised words that are not names on their own (sentence-initial words are skipped separately).
_NOT_NAMES = frozenset(
    """I I'm I'd I've I'll We We're We'll We've Our My The A An It It's This That These Those They Their He She
    His Her Please Can Could Would Should Will Do Does Don't Help Also And But Or So If When Then There Here
    On Over In At For By From After Before During With Within Most Some Many All Each Every Right Now
    Need Keep Include Exclude Avoid Summary Note Grading Assessment Inclusion Budget Detection Audience Logs
    Sales Legal Fraud Engineering Compliance Leadership Volunteers Students Instant Drivers Risk Class
    Competitors Enrolment Success Launch Submission Geographic Sessions Session Week Weeks One Two Three
    Roughly About Around Approximately Almost Nearly Only Just Total Phase
    English Latin Spanish German French Arabic Chinese Japanese Italian V1 PhD MA PI CEO CTO VP PM
    PRD SaaS AI API US UK EU""".split()
)
_REQUEST = re.compile(
    r"\b(?:i need|i'd like|i would like|i want|we need|we want|want help|want an?|need an?|can you|could you|"
    r"would you|help me|please (?:give|draft|outline|write|create|prepare|sketch|produce|put|make)|"
    r"i've been asked to produce|asked me to outline|i'm drafting|i'm writing)\b"
    r"|^[\s,;]*(?:(?:and|so|but)\s+)?(?:please\s+)?(?:write|draft|outline|create|prepare|plan|sketch|produce|"
    r"make|give|build|design|compose)\b",
    re.I,
)
DELIVERABLES = (
    "outline",
    "plan",
    "syllabus",
    "itinerary",
    "memo",
    "proposal",
    "prd",
    "requirements doc",
    "post-mortem",
    "review",
    "survey",
    "application",
    "report",
    "brief",
    "agenda",
    "timeline",
    "strategy",
    "doc",
    "document",
    "essay",
    "article",
    "paper",
    "guide",
    "checklist",
    "curriculum",
    "lesson plan",
    "pitch",
)
_PREP = r"(?:on|in|by|from|over|within|for|after|before|until|during|into|across|around|near|at|to|with|via|through)"
_LEAD_IN = r"(?:(?:the|a|an|our|my|their|early|mid|late|about|around|roughly|up to|at least|just|only)\s+)*"
# Words that need what follows them: cutting the phrase after one of these leaves the clause dangling.
_NEEDS_COMPLEMENT = frozenset(
    """is are was were be been being 's 're capped limited priced set due hoping aiming requesting rose
    dropped fell grew totals cost costs expect expecting plan planning reach hit serve serving runs run
    takes took lasts last needs need want wants like prefer about roughly around approximately than of
    asking goes go runs run lands land meets meet fell ends end starts start serve serves called use uses
    up at least under over and or to the a an our my their its with from between into onto""".split()
)
_DANGLING_END = _NEEDS_COMPLEMENT | frozenset(
    "in on by for after before until during across near via one two three four five six".split()
)
_SUBORDINATE = re.compile(
    r"^[,;]?\s*(?:which|because|since|so|including|excluding|though|although|where|that's|that is|this is)\b", re.I
)
_TRAILER = re.compile(r"^,\s(?:including|excluding|not counting|plus)\b[^,.;]*")
_ITEM = r"[^,\s]+(?:\s[^,\s]+){0,2}"
_ABBREV = re.compile(r"(?:\b(?:v|vs|e\.g|i\.e|Mr|Mrs|Ms|Dr|St|Inc|Ltd|Jr|Sr|No|approx|etc)\.|\b[A-Z]\.)$")


@dataclass
class Span:
    start: int
    end: int
    category: str
    text: str
    sentence: int = 0
    slot: str = ""
    hidden: bool = False


@dataclass
class Sentence:
    start: int
    end: int
    text: str
    core: bool = False
    clauses: list[tuple[int, int]] = field(default_factory=list)  # absolute offsets


def sentences(text: str) -> list[Sentence]:
    """Sentences with absolute offsets; abbreviations ("v.", "a.m.", "U.S.") do not end a sentence."""
    out: list[Sentence] = []
    start = 0
    for match in re.finditer(r"[.!?](?=\s+[\"'(A-Z0-9])|\n+", text):
        end = match.end()
        if match.group().startswith(".") and _ABBREV.search(text[start:end]):
            continue
        if text[start:end].strip():
            out.append(_sentence(text, start, end))
        start = end
    if text[start:].strip():
        out.append(_sentence(text, start, len(text)))
    return out


def _sentence(text: str, start: int, end: int) -> Sentence:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Sentence(start, end, text[start:end])


_PRONOUN = r"(?:we|i|i'm|i'd|i've|we're|we'll|we've|it|it's|they|she|he|there|then)"
# ", and the audience is …" starts a clause; ", and our two kids" continues a list: a verb must follow soon.
_VERB_SOON = (
    r"(?:[\w'-]+\s+){0,3}(?:is|are|was|were|will|would|has|have|had|can|can't|must|should|needs?|wants?|goes|"
    r"runs|takes|says|means)\b"
)
_SUBJECT = rf"(?:{_PRONOUN}|(?:the|our|my|that|this|legal|marketing)\s+{_VERB_SOON})"
_CLAUSE_BREAK = re.compile(
    rf";\s+|\s+—\s+|,\s+(?=(?:which|because|since|though|although|while|including|so)\b)"
    rf"|,\s+(?=(?:and|but|so|or|plus)\s+{_SUBJECT}\b)|\s+(?=(?:and|but|so|or|plus)\s+{_PRONOUN}\b)",
    re.I,
)


def clauses(sentence: Sentence) -> list[tuple[int, int]]:
    """Clause boundaries (absolute offsets) inside a sentence; each clause keeps its leading connector."""
    body_end = sentence.end - (1 if sentence.text[-1:] in ".!?" else 0)
    cuts = [sentence.start]
    for match in _CLAUSE_BREAK.finditer(sentence.text):
        cut = sentence.start + match.start()
        if sentence.start < cut < body_end:
            cuts.append(cut)
    cuts.append(body_end)
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


def is_request(text: str) -> bool:
    lowered = text.lower()
    return (bool(_REQUEST.search(text)) and any(re.search(rf"\b{d}s?\b", lowered) for d in DELIVERABLES)) or (
        text.rstrip().endswith("?") and any(re.search(rf"\b{d}s?\b", lowered) for d in DELIVERABLES)
    )


def deliverable_terms(text: str) -> set[str]:
    """The deliverable words of the clauses that ask for something ("outline", "syllabus", "memo"…)."""
    found: set[str] = set()
    for sentence in sentences(text):
        if not is_request(sentence.text):
            continue
        for a, b in clauses(sentence):
            clause = text[a:b].lower() if is_request(text[a:b]) else ""
            found |= {d for d in DELIVERABLES if re.search(rf"\b{re.escape(d)}s?\b", clause)}
    return found


def find_spans(text: str) -> tuple[list[Sentence], list[Span]]:
    """Every key-information span, non-overlapping, in order, each tagged with its sentence."""
    sents = sentences(text)
    core = next((i for i, s in enumerate(sents) if is_request(s.text)), 0)
    sents[core].core = True
    for s in sents:
        s.clauses = clauses(s)
    raw: list[Span] = []
    for category, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            raw.append(Span(m.start(), m.end(), category, m.group()))
    raw = [r for r in raw if not (r.category == "count" and re.search(r"[A-Z][\w-]*\s$", text[: r.start]))]
    raw += _entities(text, sents)
    raw += _constraints(text, sents, [r for r in raw if r.category != "name"])
    claims = [s for s in raw if s.category in _CLAIMS and s.text.count("(") == s.text.count(")")]
    facts = _resolve([s for s in raw if s.category not in _CLAIMS])
    # A constraint that holds two or more values is not one claim: its values are the facts instead.
    claims = [
        c for c in claims if sum(c.start <= v.start and v.end <= c.end for v in facts if v.category != "name") < 2
    ]
    spans = _resolve(facts + claims)
    for span in spans:
        span.sentence = next(i for i, s in enumerate(sents) if s.start <= span.start < s.end + 1)
        span.text = text[span.start : span.end]
    return sents, [s for s in spans if s.text.strip()]


def _entities(text: str, sents: list[Sentence]) -> list[Span]:
    starts = {s.start for s in sents}
    clause_starts = {a for s in sents for a, _ in clauses(s)}
    out = []
    for m in _ENTITY.finditer(text):
        words = m.group().split()
        # Trim leading words that are capitalised only by position or habit.
        offset = m.start()
        while words and (words[0].strip("'’s") in _NOT_NAMES or (offset in starts and len(words) == 1)):
            offset += len(words[0]) + 1
            words = words[1:]
        while words and words[0] in {"of", "the", "and", "&", "for", "de"}:
            offset += len(words[0]) + 1
            words = words[1:]
        # "Austin and I've": a connector followed by a non-name ends the name.
        for i, w in enumerate(words):
            if w in {"and", "&", "of", "the", "for", "de"} and i + 1 < len(words) and words[i + 1] in _NOT_NAMES:
                words = words[:i]
                break
        while words and words[-1] in {"of", "the", "and", "&", "for", "de", "v."}:
            words = words[:-1]
        if not words or ((offset in starts or offset in clause_starts) and len(words) == 1):
            continue
        value = " ".join(words)
        if re.fullmatch(rf"{_MONTH}|{_WEEKDAY}|[A-Z]|\d.*", value):
            continue
        if out and re.fullmatch(r"\s(?:on|in)\s", text[out[-1].end : offset]) and _SERIES.search(out[-1].text):
            merged = text[out[-1].start : offset + len(value)]  # IEEE Transactions on Robotics
            out[-1] = Span(out[-1].start, offset + len(value), "name", merged)
            continue
        out.append(Span(offset, offset + len(value), "name", value))
    return out


_SERIES = re.compile(r"(?:Transactions|Conference|Workshop|Symposium|Journal|Committee|Institute|Center|Centre)$")


def _constraints(text: str, sents: list[Sentence], values: list[Span]) -> list[Span]:
    out = []
    for s in sents:
        if s.core:
            continue
        for a, b in clauses(s):
            clause = text[a:b]
            lead = len(clause) - len(clause.lstrip(";—, "))
            body = clause[lead:]
            body_l = re.sub(r"^(?:and|but|so|or|plus)\s+", "", body, flags=re.I)
            a2 = a + lead + (len(body) - len(body_l))
            if _REQUIREMENT.match(body_l):
                value = re.sub(r"^(?:please\s+)?(?:also\s+)?", "", body_l, flags=re.I)
                out.append(Span(b - len(value), b, "requirement", value))
                continue
            m = _CONSTRAINT.search(body_l)
            if m and not _SUBORDINATE.match(body):
                # "No reading knowledge of Latin is required": a short subject belongs to the claim.
                prefix = body_l[: m.start()]
                short = len(prefix.split()) <= 8 and not any(a2 <= v.start < a2 + m.start() for v in values)
                begin = a2 if short else a2 + m.start()
                out.append(Span(begin, b, "constraint", text[begin:b]))
    return out


_CLAIMS = ("constraint", "requirement")


def _resolve(raw: list[Span]) -> list[Span]:
    """Non-overlapping spans: constraints swallow what they contain, otherwise the longest span wins."""
    rank = {"requirement": 4, "constraint": 4, "name": 2, "count": 2}
    chosen: list[Span] = []
    for span in sorted(raw, key=lambda s: (-rank.get(s.category, 3), -(s.end - s.start), s.start)):
        if all(span.end <= c.start or span.start >= c.end for c in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)


# ---------------------------------------------------------------------------------------------- rewriting

_GAP = "\x00"  # marks a deleted stretch while the sentence is tidied, so fixes apply only next to a cut
_BARE_TIME = re.compile(r"^(?:last|next|this)\s", re.I)
_PREP_BEFORE = re.compile(rf"(?:^|\s)(?P<prep>{_PREP}|out of|based in|up to)\s+{_LEAD_IN}$", re.I)
_PREP_INSIDE = re.compile(rf"^(?:{_PREP})\s", re.I)
_SLOT_CONTEXT: dict[str, tuple[tuple[str, str], ...]] = {
    "amount": (
        (r"budget|capped|all-in", "budget"),
        (r"request|asking for|funding", "amount requested"),
        (r"\bfee\b", "fee"),
        (r"bonus", "sign-up bonus"),
        (r"price|priced|cost|costs|each|a bag|/month", "price"),
        (r"lost|gmv", "estimated loss"),
        (r"arr|worth|deals?", "deal value"),
        (r"commit|sponsor", "sponsorship"),
        (r"liability|policy|insurance", "insurance cover"),
        (r"net|raise|goal", "fundraising goal"),
        (r"a day|per day", "daily budget"),
    ),
    "date": (
        (r"\bdue\b|deadline|submit|submission|by\b", "deadline"),
        (r"launch|live|release", "launch date"),
        (r"sign", "signing date"),
        (r"land|fly|flying|arrive|depart", "travel dates"),
        (r"meeting|hearing|board", "meeting date"),
        (r"exam", "exam date"),
        (r"published|work from", "publication years"),
    ),
    "duration": (
        (r"session|period|meeting", "session length"),
        (r"semester|course", "course length"),
        (r"trip|itinerary|drive|driving", "trip length"),
        (r"offline", "offline period"),
        (r"retain", "retention period"),
        (r"award|grant|phase|project|program", "project length"),
    ),
    "percentage": (
        (r"discount", "discount"),
        (r"response rate", "target response rate"),
        (r"lift|conversion", "target lift"),
        (r"grad|midterm|project|problem set", "grade weight"),
        (r"crash", "crash-free rate"),
        (r"loss", "loss rate"),
        (r"refer", "referral target"),
    ),
}
_ORG = re.compile(
    r"Foundation|Commission|University|Union|Council|Institute|Board|Tours|Bank|Company|Inc\b|Agency|"
    r"Department|City of|School|College|Review|Transactions|Surveys|Journal|NGO|Award",
    re.I,
)


@dataclass(frozen=True)
class Rewrite:
    masked_task: str
    facts: list[Fact]
    candidates: int  # key-information spans found (hidden or not)


def rewrite(text: str, *, choose: list[int] | None = None, target: int | None = None) -> Rewrite:
    """Hide key-information spans in the order of `choose` (indices into the spans) until `target` facts
    are hidden (all of them when None). A span whose removal cannot be made to read well stays."""
    sents, spans = find_spans(text)
    order = choose if choose is not None else list(range(len(spans)))
    gone = [False] * len(text)
    subs: dict[int, str] = {}
    for i in order:
        if target is not None and _hidden_count(spans, gone) >= target:
            break
        span = spans[i]
        if all(gone[span.start : span.end]):
            continue
        # A value stated twice cannot be hidden by cutting one place; leave it (a cut elsewhere may still take it).
        if len(re.findall(rf"(?<!\w){re.escape(normalise(span.text))}(?!\w)", normalise(text))) > 1:
            continue
        for a, b, replacement in _candidate_cuts(text, sents[span.sentence], span):
            trial, trial_subs = gone[:], {**subs, a: replacement} if replacement else subs
            trial[a:b] = [True] * (b - a)
            if _reads_ok(_render_sentence(text, sents[span.sentence], trial, trial_subs), sents[span.sentence]):
                gone, subs = trial, trial_subs
                break
    masked = " ".join(r for s in sents if (r := _render_sentence(text, s, gone, subs)))
    facts = _facts(text, spans, gone, masked)
    return Rewrite(masked, facts, len(spans))


def _hidden_count(spans: list[Span], gone: list[bool]) -> int:
    return sum(all(gone[s.start : s.end]) for s in spans)


_ENDS_PHRASE = re.compile(
    r"^(?:\s*$|[,.;:!?)—]|\s+(?:to|for|with|in|on|at|by|from|so|because|which|who|that|since|while|as|before|"
    r"after|until|through|via|—|where|when|if|but|including|excluding|rather|instead|plus)\b)"
)
_MODALS = frozenset("would will can could should must may might to don't doesn't didn't won't can't".split())
_VERBISH = frozenset(
    """we i they you he she can cannot will would should must may might is are was were has have had do does did
    said says asked wants wanted needs needed gets got makes made uses used""".split()
)
_DETERMINER = re.compile(r"\b(?:a|an|the|our|my|their|your|its)\s$", re.I)


def _candidate_cuts(text: str, sentence: Sentence, span: Span) -> list[tuple[int, int, str]]:
    """Deletions (start, end, replacement) for a span, smallest first; a request clause is never cut."""
    cuts: list[tuple[int, int, str]] = []
    before = text[sentence.start : span.start]
    after = text[span.end : sentence.end]
    if span.category not in _CLAIMS:
        noun_next = re.match(r"\s([a-z][\w-]*)", after)
        if (
            noun_next
            and _DETERMINER.search(before)
            and not re.search(r"(?:ing|ed)$", noun_next.group(1))
            and noun_next.group(1) not in _NEEDS_COMPLEMENT | _DANGLING_END | _VERBISH
        ):
            cuts.append((span.start, span.end + 1, ""))  # a 12-day trip → a trip; a Japan itinerary → an itinerary
        prep = _PREP_BEFORE.search(before)
        possessive = span.text.endswith("'s") or after.startswith("'s")
        if possessive:
            end = span.end + (0 if span.text.endswith("'s") else 2)
            if prep and not _DETERMINER.search(before):
                cuts.append((span.start, end + 1, "the "))  # on last Tuesday's outage → on the outage
            else:
                cuts.append((span.start, end + 1, ""))  # the Hartwell Foundation's grant → the grant
        word_before = re.findall(r"[\w'-]+", before[: prep.start()] if prep else before)[-2:]
        # After a verb the phrase is usually its complement ("capped at $5,000", "would fall in Class 32").
        free = not word_before or (
            word_before[-1].lower() not in _NEEDS_COMPLEMENT
            and not word_before[-1].lower().endswith(("ing", "ed"))
            and not (len(word_before) == 2 and word_before[0].lower() in _MODALS and word_before[1].islower())
        )
        if prep and free and not possessive and _ENDS_PHRASE.match(after) and not re.match(r",\s[A-Z]", after):
            cuts.append((sentence.start + prep.start(), span.end, ""))  # … on April 2 → …
        if (_PREP_INSIDE.match(span.text) or _BARE_TIME.match(span.text)) and free and _ENDS_PHRASE.match(after):
            cuts.append((span.start - (1 if before.endswith(" ") else 0), span.end, ""))
        if before.endswith(", ") and re.match(r"[,.]", after):
            in_list = bool(re.search(rf",\s{_ITEM},\s$", before) or re.match(rf",\s{_ITEM},?\s(?:and|or)\s", after))
            clause_next = bool(re.match(r",\s(?:and|but|so|or)\s", after))
            # An appositive goes with both commas (a hotfix, 6.2.1, through …); a list item with one.
            eat = after.startswith(",") and not in_list and not clause_next
            cuts.append((span.start - 2, span.end + (1 if eat else 0), ""))
        # "with an 8,000-word cap, including references": the trailer goes with what it qualifies.
        trailer = _TRAILER.match(after)
        if trailer:
            cuts = [(a, b + len(trailer.group()) if b == span.end else b, r) for a, b, r in cuts]
    # The request sentence keeps all its clauses: only modifiers and phrases inside it may go.
    for a, b in [] if sentence.core else sentence.clauses:
        if a <= span.start < b:
            end = b
            for a2, b2 in sentence.clauses:  # clauses that hang on this one go with it
                if a2 == end and _SUBORDINATE.match(text[a2:b2]):
                    end = b2
            cuts.append((a, end, ""))
    if not sentence.core:
        cuts.append((sentence.start, sentence.end, ""))
    return cuts


def _render_sentence(text: str, sentence: Sentence, gone: list[bool], subs: dict[int, str]) -> str:
    chars = []
    for i in range(sentence.start, sentence.end):
        if not gone[i]:
            chars.append(text[i])
        elif i in subs:
            chars.append(subs[i])
        elif not chars or chars[-1] != _GAP:
            chars.append(_GAP)
    out = "".join(chars)
    if not out.replace(_GAP, "").strip(" .,;:—!?"):
        return ""
    if _GAP not in out:
        return out
    out = re.sub(rf"\b([Aa])n?(\s*{_GAP}\s*)(?=([A-Za-z]))", _article, out)
    out = re.sub(rf"\s*{_GAP}\s*", " ", out)
    out = re.sub(r"\(\s*\)", "", out)
    out = re.sub(r"\s+([,.;:!?)])", r"\1", out)
    out = re.sub(r"[,;:](?:\s*[,;:])+", _strongest, out)
    out = re.sub(r"[,;:—]\s*([.!?])$", r"\1", out.strip())
    out = re.sub(r"^[\s,;:—]*(?:(?:and|but|plus|or)\s+)?", "", out, flags=re.I)
    out = re.sub(r"\s{2,}", " ", out).strip()
    if out and out[-1] not in ".!?":
        out += sentence.text[-1] if sentence.text[-1] in ".!?" else "."
    return out[:1].upper() + out[1:]


def _strongest(m: re.Match[str]) -> str:
    return next(p for p in ";:," if p in m.group())


def _article(m: re.Match[str]) -> str:
    article = "an" if m.group(3).lower() in "aeiou" else "a"
    return (article.capitalize() if m.group(1).isupper() else article) + m.group(2)


def _reads_ok(rendered: str, sentence: Sentence) -> bool:
    """A rewritten sentence reads well: nothing dangles before a stop or a comma, no orphan connector."""
    if not rendered:
        return not sentence.core
    words = re.findall(r"[\w'’$£€%-]+|[,;:.!?]", rendered.lower())
    if sum(1 for w in words if w not in ",;:.!?") < 3:
        return False
    for i, w in enumerate(words[:-1]):
        if words[i + 1] in {",", ";", ":", ".", "!", "?"} and w.strip(".") in _DANGLING_END:
            return False
    if re.match(r"^(?:which|because|since|so that|including|excluding|while|then)\b", rendered, re.I):
        return False
    if sentence.core and not is_request(rendered):
        return False
    if re.search(
        r"\b(?:a|an|the|our|my)\s+(?:we|i|they|is|are|and|or|of|in|to|on|at|for|with|by|from|can't|won't|can|will|"
        r"must|should|would|has|have)\b",
        rendered,
        re.I,
    ):
        return False
    return not re.search(r"\b(?:and|or|but)\s+(?:and|or|but)\b|\(\s*[,.]", rendered, re.I)


def _facts(text: str, spans: list[Span], gone: list[bool], masked: str) -> list[Fact]:
    facts: list[Fact] = []
    used: set[str] = set()
    masked_norm = normalise(masked)
    for span in spans:
        if not all(gone[span.start : span.end]) or normalise(span.text) in masked_norm:
            continue  # kept, or stated again elsewhere in the masked text: not hidden
        slot = _slot(text, span)
        if slot in used:
            context = [
                w
                for w in re.findall(r"(?<!')\b[A-Za-z][\w-]{2,}", text[max(0, span.start - 40) : span.start])
                if w.lower() not in _STOP
            ][-2:]
            slot = f"{slot} ({' '.join(context).lower()})" if context else slot
        n = 2
        while slot in used:
            slot, n = f"{slot.split(' #')[0]} #{n}", n + 1
        used.add(slot)
        value = span.text.strip().rstrip(".,;")
        text_ = (
            f"{value[:1].upper()}{value[1:]}."
            if span.category in _CLAIMS
            else f"{slot[:1].upper()}{slot[1:]}: {value}."
        )
        facts.append(Fact(text=text_, slot=slot, value=value))
    return facts


_STOP = frozenset(
    """the a an and or but of in on at for to with by from is are was were be been it its this that we our
    my i i'm we're they their you your he she his her so as than then there which who what when where how
    up about over under into out not no all any some per via more most less least just only also very
    would could should will can may might must has have had do does did am after before while because""".split()
)


def _slot(text: str, span: Span) -> str:
    start = max(text.rfind(sep, 0, span.start) for sep in (". ", "? ", "; "))
    ends = [i for sep in (". ", "? ", "; ") if (i := text.find(sep, span.end)) != -1]
    context = text[start + 1 : min(ends or [len(text)])].lower()
    where = span.start - (start + 1)
    category = span.category
    if category == "date" and re.match(r"(?:from|after|since|before)\b", span.text, re.I):
        return "time range"
    if category in _SLOT_CONTEXT:
        # The keyword nearest to the value names it: "budget is tiny, about $3,000" → budget.
        best: tuple[int, str] | None = None
        for pattern, slot in _SLOT_CONTEXT[category]:
            for m in re.finditer(pattern, context):
                distance = abs(m.start() - where)
                if best is None or distance < best[0]:
                    best = (distance, slot)
        if best is not None:
            return best[1]
    if category == "count":
        return "number of " + re.findall(r"[A-Za-z][\w'-]*", span.text)[-1].lower()
    if category == "name" and re.search(r"\d", span.text):
        return "name"
    if category == "name":
        before = text[max(0, span.start - 20) : span.start].lower()
        if _ORG.search(span.text):
            return "organization"
        if re.search(r"\b(?:in|near|from|around|across|into|out of|to|based in|at)\s+(?:the\s+)?$", before):
            return "place"
        if re.search(r"\b(?:with|using|use|support|via|on|through|in)\s+(?:the\s+)?$", before):
            return "tool or platform"
        return "name"
    return {
        "requirement": "requested content",
        "length": "length limit",
        "age": "ages",
        "time": "time of day",
        "schedule": "schedule",
        "version": "version",
        "ratio": "ratio",
        "amount": "amount",
        "date": "date",
        "duration": "duration",
        "percentage": "percentage",
        "constraint": "constraint",
    }.get(category, category)


def normalise(text: str) -> str:
    """Lower case, straight quotes, plain dashes, single spaces: for comparing spans across texts."""
    text = text.lower().replace("’", "'").replace("“", '"').replace("”", '"').replace("–", "-").replace("—", "-")
    return re.sub(r"\s+", " ", text).strip()
