"""The regular expressions behind `entities.extract`, one per entity kind (or a few).

Why they look the way they do:
- Plates are upper-case and shaped (letters, digits, letters) so ordinary words, years
  ("MAY 2015"), flight numbers ("4U9525"), aircraft ("A320") and weapons ("AK47") do not
  match; a lower-case or odd-shaped registration still counts right after "plate"/"reg".
- Street names and "near X" want capitalised names, or a lower-case place noun ("outside the
  station"), so "near future" and "outside the box" stay out.
- Clock times need two minute digits, and a dot separator only with am/pm or after "at".
"""

from __future__ import annotations

import re

_I = re.IGNORECASE

# UK current (2001 on): two letters, two digits, three letters — "AB12 CDE".
UK_CURRENT_PLATE = re.compile(r"\b[A-Z]{2}[0-9]{2} ?[A-Z]{3}\b")
# UK prefix (1983-2001) "A123 BCD" and suffix (1963-1983) "ABC 123D".
UK_PREFIX_PLATE = re.compile(r"\b[A-HJ-NP-Y][0-9]{1,3} ?[A-Z]{3}\b")
UK_SUFFIX_PLATE = re.compile(r"\b[A-Z]{3} ?[0-9]{1,3}[A-HJ-NP-Y]\b")
# US: "ABC-1234", "ABC 1234", "ABC1234", California-style "7ABC123", and "ABC-123".
US_PLATE = re.compile(r"\b(?:[A-Z]{3}[- ]?[0-9]{4}|[0-9][A-Z]{3}[0-9]{3}|[A-Z]{3}-[0-9]{3})\b")
# After a plate word (and filler such as "number", "starts with"), the next one to three
# letter/digit groups; `entities` decides which of them make a registration (see there).
PLATE_AFTER_WORD = re.compile(
    r"\b(?:plates?|reg(?:istration)?|rego|licen[cs]e|tag|matr[ií]cula|placa|targa|plaque|"
    r"immatriculation)(?:\s+(?:no\.?|number|num|plate|is|was|reads|read|starts? with|"
    r"started(?: with)?|starting with|begins? with|beginning with|ends? (?:with|in)|"
    r"ending (?:with|in)|partial))*[\s:#.]+"
    r"([A-Z0-9]{1,8}(?:[ -][A-Z0-9]{1,5}){0,2})\b",
    _I,
)
# Whole registrations, separators removed, that a space may join: UK current, prefix,
# suffix and dateless, US letters-digits, Victorian "1AB 2CD".
PLATE_SHAPE = re.compile(
    r"[A-Z]{2}[0-9]{2}[A-Z]{3}|[A-Z][0-9]{1,3}[A-Z]{3}|[A-Z]{3}[0-9]{1,3}[A-Z]"
    r"|[A-Z]{1,3}[0-9]{1,4}|[0-9]{1,4}[A-Z]{1,3}|[A-Z]{3}[0-9]{4}|[0-9][A-Z]{2}[0-9][A-Z]{2}"
)
# The two-group registrations that may be written in lower case ("reg ab12 cde").
LOWER_CASE_PLATE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z]{3}|[A-Z]{3}[0-9]{4}")
MONTHS = frozenset(
    [
        "JAN",
        "FEB",
        "MAR",
        "APR",
        "MAY",
        "JUN",
        "JUL",
        "AUG",
        "SEP",
        "SEPT",
        "OCT",
        "NOV",
        "DEC",
        "THE",
        "AND",
        "FOR",
        "WAS",
        "ARE",
        "NOT",
        "HAS",
    ]
)

_COLOUR = (
    r"(?:(?:dark|light|pale|bright|metallic)[ -])?(?:black|white|silver|grey|gray|red|blue|"
    r"green|yellow|orange|gold|golden|brown|beige|maroon|purple|navy|burgundy|cream|tan)"
)
_MAKE = (
    r"(?:ford|vauxhall|toyota|honda|nissan|bmw|audi|mercedes(?:-benz)?|volkswagen|vw|peugeot|"
    r"renault|citroen|fiat|kia|hyundai|mazda|volvo|skoda|seat|chevrolet|chevy|dodge|jeep|tesla|"
    r"subaru|lexus|mini|land rover|range rover|jaguar|porsche|mitsubishi|suzuki|opel|cadillac|"
    r"chrysler|gmc|buick|lincoln|acura|infiniti)"
)
_TYPE = (
    r"(?:car|van|truck|pickup|pick-up|suv|sedan|saloon|hatchback|estate|coupe|minivan|"
    r"motorbike|motorcycle|moped|scooter|bike|bus|lorry|taxi|cab|4x4|jeep|ute|vehicle)"
)
_MODEL = (
    r"(?:transit|sprinter|escort|fiesta|focus|mondeo|golf|polo|passat|corsa|astra|insignia|"
    r"civic|accord|corolla|camry|prius|yaris|hilux|land cruiser|commodore|falcon|mustang|"
    r"f-150|f150|silverado|ram|tahoe|explorer|camaro|charger|challenger|impala|altima|sentra|"
    r"qashqai|micra|juke|clio|megane|twingo|punto|panda|octavia|fabia|discovery|defender|"
    r"evoque|lambo|lamborghini|ferrari|prius|model [3sxy]|cybertruck)"
)
VEHICLE = re.compile(
    rf"\b{_COLOUR}\s+(?:{_MAKE}(?:\s+[A-Z0-9][\w-]*)?|(?:{_MODEL}\s+)?{_TYPE}s?|{_MODEL})\b"
    rf"|\b(?:blk|wht|slv|gry|blu)\s+(?:{_MAKE}|{_MODEL}|{_TYPE})\b"
    rf"|\b{_MAKE}\s+(?:{_TYPE}|[A-Z][a-z]+[0-9]*|[A-Z0-9]{{1,4}})\b",
    _I,
)

_CLOTHING = (
    r"(?:hoodie|hoody|hood|jacket|coat|jumper|sweater|sweatshirt|t-shirt|tshirt|shirt|top|"
    r"jeans|trousers|pants|shorts|tracksuit|trainers|sneakers|boots|shoes|cap|hat|beanie|"
    r"balaclava|mask|scarf|gloves|vest|uniform|clothing|clothes|backpack|rucksack|bag|"
    r"glasses|sunglasses|fatigues|camouflage|camo|raincoat|puffer|parka|fleece|gilet|cagoule|"
    r"trackies|hi-vis|overalls|dress|skirt|leggings|turban|hijab|niqab|headscarf|bandana)"
)
# Clothing that is named in a comma list without "wearing" ("white male, 30s, black hoodie,
# jeans"); words that are often not clothing ("top", "bag", "mask") stay out.
_LISTED_CLOTHING = (
    r"(?:hoodie|hoody|jacket|coat|jumper|sweater|sweatshirt|t-shirt|tshirt|shirt|jeans|"
    r"trousers|tracksuit|trainers|sneakers|beanie|balaclava|raincoat|puffer|parka|trackies|"
    r"hi-vis|gloves|backpack|rucksack|sunglasses|glasses)"
)
_PERSON_NOUN = (
    r"(?:male|female|man|woman|men|women|guy|lad|lads|bloke|youth|youths|teen|teenager|"
    r"boy|girl|kid)"
)
_AGE_BAND = r"(?:(?:early|mid|late)[ -]?)?[1-9]0s"
# Person descriptions: several patterns, each run only when its gate words are in the post
# (see `PERSON_PARTS`): one alternation of them all cost most of `extract`'s time.
_CLOTHED = re.compile(
    rf"\b(?:wearing|dressed in|wore|in an?|clad in)\s+(?:an?\s+|the\s+|his\s+|her\s+)?"
    rf"(?:[\w-]+\s+){{0,3}}?{_CLOTHING}s?\b"
    rf"|(?<=,\s)(?:(?:long|short|dark|light|black|white|grey|gray|blue|navy|red|green|"
    rf"brown|beige|khaki|camo)\s+){{0,2}}{_LISTED_CLOTHING}s?\b"
    rf"|\bin (?:black |dark )?(?:balaclavas|masks|hoodies|hoods|camo|uniforms?)\b",
    _I,
)
_DESCRIBED = re.compile(
    rf"\b(?:white|black|asian|hispanic|latino|latina|mixed[- ]race|ic[1-6]|ie[1-6])\s+"
    rf"{_PERSON_NOUN}\b(?:,?\s+(?:aged\s+|about\s+|around\s+)?{_AGE_BAND}\b)?"
    rf"|\b(?:tall|short|thin|skinny|slim|stocky|fat|large|big|small|young|old|older|elderly|"
    rf"bearded)(?:,?\s+(?:and\s+)?(?:tall|short|thin|skinny|slim|stocky|fat|young|older|"
    rf"bearded|white|black|asian))?\s+{_PERSON_NOUN}\b"
    rf"|\b{_PERSON_NOUN},?\s+(?:aged\s+|about\s+|around\s+)?{_AGE_BAND}\b",
    _I,
)
_ALL_IN = re.compile(r"\ball in (?:black|white|grey|gray|dark clothing|camo)\b", _I)
_HAIR = re.compile(
    r"\b(?:(?:short|long|curly|straight|shaved|spiky|dyed)\s+)?(?:blonde?|brown|black|dark|"
    r"grey|gray|ginger|red|white|fair|brunette)[ -]hair(?:ed)?\b"
    r"|\b(?:bald|balding|shaved head|ponytail|dreadlocks|dreads)\b",
    _I,
)
_AGED_BUILT = re.compile(
    r"\bin (?:his|her|their) (?:early |mid |late |mid-)?(?:[1-9]0s|[1-9]0's|"
    r"teens|twenties|thirties|forties|fifties|sixties|seventies)\b"
    r"|\baged? (?:about |around )?[1-9][0-9]?\b(?! (?:years? ago|years? later))"
    r"|\b[1-9][0-9][- ](?:year|yr)s?[- ]old\b"
    r"|\b(?:[4-7] ?(?:ft|feet|foot|')\s?(?:[0-9]{1,2} ?(?:in|inches|\"|'')?)?|"
    r"1[.,][5-9][0-9]? ?m)(?: tall)?(?=\W|$)"
    r"|\b(?:slim|slight|thin|stocky|heavy|heavy-set|heavyset|medium|athletic|muscular|large|"
    r"skinny|chubby|well) build\b|\bheavy[- ]?set\b"
    r"|\b(?:with|has|had) an? (?:\w+ )?(?:beard|moustache|mustache|tattoo|scar|goatee)\b",
    _I,
)
_STREET_KIND = (
    r"(?:Street|St(?!\.?\s[A-Z][a-z])|Road|Rd|Avenue|Ave|Lane|Ln|Boulevard|Blvd|Drive|Place|Pl|Square|Sq|Way|"
    r"Highway|Hwy|Terrace|Crescent|Court|Close|Parkway|Row|Gardens|Mall|Bridge|Station)"
)
# A capitalised name word, "O'Connell" and "McDonald" included.
_NAME = r"(?<![\w'\u2019])[A-Z][A-Za-z'\u2019]*+(?<=[a-z])"
STREET = re.compile(
    rf"\b(?:{_NAME}\s){{1,3}}{_STREET_KIND}\b"
    rf"|\b[0-9]{{1,5}}[A-Za-z]?\s(?:{_NAME}\s){{1,3}}{_STREET_KIND}\b"
    r"|\b[0-9]{1,4}(?:st|nd|rd|th)\s(?:Street|St|Avenue|Ave)\b"
    r"|\b(?:Calle|Avenida|Av\.|Paseo|Plaza|Rue|Avenue|Boulevard|Via|Viale|Piazza|Corso|Rua|"
    r"Praça|Largo|Travessa)\s(?:(?:de|del|de la|da|do|dos|des|du|della|dei|di|la|le)\s)?"
    r"[A-ZÁÉÍÓÚÂÊÔÇ][\w'\u2019-]+(?:\s[A-Z][\w'\u2019-]+)?"
)
UK_POSTCODE = re.compile(r"\b(?:[A-PR-UWYZ][A-HK-Y]?[0-9][A-Z0-9]?) ?[0-9][ABD-HJLNP-UW-Z]{2}\b")
_PLACE_NOUN = (
    r"(?:station|school|college|university|campus|bank|mall|shop|store|supermarket|cafe|"
    r"café|restaurant|pub|bar|church|mosque|synagogue|temple|hospital|hotel|airport|terminal|"
    r"stadium|arena|park|bridge|building|office|offices|library|museum|market|square|centre|"
    r"center|theatre|theater|cinema|club|nightclub|factory|plant|depot|garage|petrol station|"
    r"gas station|car park|parking lot|junction|roundabout|crossing|tunnel|underpass|entrance|"
    r"exit|gate|embassy|parliament|court|courthouse|town hall|city hall|police station)"
)
NEAR = re.compile(
    r"\b(?:near|outside|opposite|behind|next to|in front of|corner of|junction of|close to)\s+"
    r"(?:the\s+)?(?:(?:[A-Z][\w'\u2019.-]*\s?){1,4}(?:" + _PLACE_NOUN + r"\b)?"
    r"|(?:[a-z]+\s){0,2}" + _PLACE_NOUN + r"\b)"
)
# A named place with a lower-case kind: "Piccadilly station", "the Lindt cafe".
NAMED_PLACE = re.compile(
    r"(?<![\w'\u2019-])(?:[A-Z][\w'\u2019-]+\s){1,3}(?:station|cafe|café|mosque|church|synagogue|school|"
    r"hospital|airport|mall|centre|center|stadium|arena|nightclub|hotel|park|bridge|market|"
    r"square|tower|estate|shopping centre|retail park|campus)\b"
)
# On a road: "on the M1", "M1 junction 24", "A40", "I-95", "Interstate 95", "Highway 401".
ROAD = re.compile(
    r"\b(?:on|along|off|onto|near|at|southbound|northbound|eastbound|westbound)\s+"
    r"(?:the\s+)?((?:M[0-9]{1,3}|A[0-9]{1,4}(?:\(M\))?|I-[0-9]{1,3}|Interstate [0-9]{1,3}|"
    r"(?:Highway|Hwy|Route|US) [0-9]{1,3})\b(?:\s+(?:junction|jct|j)\s?[0-9]{1,3}[a-z]?)?)"
    r"|\b((?:M|A)[0-9]{1,3}\s+(?:junction|jct|j)\s?[0-9]{1,3}[a-z]?)\b"
    r"|\b((?:junction|jct|J)\s?[0-9]{1,3}[a-z]? (?:of|on) the (?:M|A)[0-9]{1,3})\b"
)
# After "on", "in", "down" ... (not "from": "an update from Sarah"): one to three capitalised
# words ("on Deansgate", "in Watertown"), unless they are a day, a month, a platform or a
# word such posts often follow with ("on TV", "in God"); lower-case SMS street names ("on
# high st", "down old kent rd").
ON_PLACE = re.compile(
    r"\b(?:on|in|down|up|along|at|towards|toward|into)\s+(?:the\s+)?"
    r"((?:[A-Z][a-z'\u2019]+)(?:\s[A-Z][a-z'\u2019]+){0,2})\b"
    r"|\b(?:on|down|up|along|near|outside|off|at|in)\s+"
    r"((?:(?!the\b|a\b|my\b|this\b|that\b|our\b|your\b|his\b|her\b)[a-z]+\s){1,2}"
    r"(?:st|rd|road|street|lane|ln|ave|avenue|high street|drive|dr|way))\b"
)
_NOT_A_PLACE_WORDS = (
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April "
    "May June July August September October November December Twitter Facebook Instagram "
    "Snapchat Tiktok TikTok Youtube YouTube Reddit Whatsapp WhatsApp Telegram TV Sky BBC CNN "
    "Fox News God Jesus Christ Allah Heaven Hell English French Spanish Italian Portuguese "
    "German Arabic Islam Muslim Muslims Christians Jews I Me It This That These Those There "
    "Here Today Tonight Tomorrow Yesterday Live Breaking Update Police Fire Ambulance Mr Mrs "
    "Ms Dr Sir Lord Christmas Easter Ramadan Eid Google Apple Uber Amazon Netflix Spotify "
    "Hope Love Peace Prayers Praying Thoughts Support Solidarity Memory Memoriam Shock Fear "
    "Total Time Times Charge Custody Court Power Action Danger Trouble Case Question Place "
    "Mind Touch Order Line Board Duty Camera Film Video Photo Record Air Radio Stream"
)
NOT_A_PLACE = frozenset(_NOT_A_PLACE_WORDS.split())

COORDINATES = re.compile(
    r"(?<![\d.])(-?[0-9]{1,2}\.[0-9]{3,})\s*,\s*(-?[0-9]{1,3}\.[0-9]{3,})(?![\d.])"
)
# "53.48N 2.24W", "53.4808° N, 2.2426° W": hemispheres instead of signs (decimals only:
# "the 5N bus" is no position).
COORDINATES_NSEW = re.compile(
    r"(?<![\d.])([0-9]{1,2}\.[0-9]+)\s*+(?:°\s*+)?([NS])\b[\s,;/]*+"
    r"([0-9]{1,3}\.[0-9]+)\s*+(?:°\s*+)?([EW])\b"
)
# Degrees, minutes, seconds: 42°21'47"N 71°03'36"W.
COORDINATES_DMS = re.compile(
    r"([0-9]{1,2})°\s*([0-9]{1,2})['\u2032]\s*(?:([0-9]{1,2}(?:\.[0-9]+)?)[\"\u2033]\s*)?([NS])[\s,;/]*"
    r"([0-9]{1,3})°\s*([0-9]{1,2})['\u2032]\s*(?:([0-9]{1,2}(?:\.[0-9]+)?)[\"\u2033]\s*)?([EW])"
)
# "lat 45.4215 lon -75.6972", "latitude: 45.42, longitude: -75.69".
COORDINATES_NAMED = re.compile(
    r"\blat(?:itude)?\s*[:=]?\s*(-?[0-9]{1,2}\.[0-9]+)[\s,;]+"
    r"(?:lon|lng|long|longitude)\s*[:=]?\s*(-?[0-9]{1,3}\.[0-9]+)",
    _I,
)
# In a maps link: "?q=29.7604,-95.3698", "ll=", "/@51.5014,-0.1419,17z", "query=" ...
COORDINATES_IN_URL = re.compile(
    r"(?:[?&](?:q|ll|sll|query|center|daddr|destination|mlat)=|/@|/place/)"
    r"(-?[0-9]{1,2}\.[0-9]+)(?:,|%2C|&mlon=)\s*(-?[0-9]{1,3}\.[0-9]+)",
    _I,
)

TIME = re.compile(
    r"\b(?:at\s+)?(?:[01]?[0-9]|2[0-3]):[0-5][0-9](?:\s?[ap]\.?m\.?)?(?![:\d])"
    r"|\bat\s+(?:[01]?[0-9]|2[0-3])[.h][0-5][0-9]\b(?:\s?[ap]\.?m\.?)?"
    r"|\b(?:[1-9]|1[0-2])(?:[.:][0-5][0-9])?\s?[ap]\.?m\b\.?"
    r"|\b(?:[0-9]{1,3}|a few|few|several|a couple of|an?|half an|one|two|three|four|five|"
    r"ten|fifteen|twenty|thirty|forty|forty-five)\s"
    r"(?:seconds?|secs?|minutes?|mins?|hours?|hrs?)\sago\b"
    r"|\bhace\s(?:[0-9]{1,3}|unos|pocos)\s(?:segundos|minutos|horas?)\b"
    r"|\bh[aá]\s(?:[0-9]{1,3}|poucos)\s(?:segundos|minutos|horas?)\b"
    r"|\b[0-9]{1,3}\s(?:minuti|ore)\sfa\b"
    r"|\bil y a\s[0-9]{1,3}\s(?:minutes?|heures?)\b"
    r"|\bjust now\b|\bmoments? ago\b"
    r"|\b(?:quarter|half) (?:past|to) (?:[1-9]|1[0-2])\b",
    _I,
)

WEAPON = re.compile(
    r"\b(?:kitchen knife|knife|knives|machete|machetes|samurai sword|sword|axe|hammers?|"
    r"crossbow|handgun|baseball bat|crowbar|screwdriver|acid|noxious substance|taser|"
    r"handguns|pistol|pistols|revolver|rifle|rifles|assault rifle|shotgun|shotguns|sniper rifle|"
    r"long gun|9 ?mm|\.22|\.45|"
    r"gun(?!\s(?:control|laws?|lobby|rights|owners?|culture|violence|reform))|"
    r"guns(?!\s(?:control|laws?|lobby|rights))|"
    r"firearm|firearms|ak[- ]?47s?|ar-?15s?|kalashnikovs?|kalachnikovs?|uzi|glock|"
    r"grenade|grenades|explosives?|petrol bomb|pipe bomb|car bomb|nail bomb|"
    r"bomb(?!\s(?:squad|disposal))|bombs|ied|suicide vest|suicide belt|"
    r"rocket launcher|rpg|molotov|"
    r"cuchillo|navaja|fusil|escopeta|arma de fuego|armas de fuego|"
    r"explosivos?|granada|faca|facão|espingarda|arma branca|coltello|fucile|"
    r"mitra|esplosivo|couteau|machette|arme à feu|armes à feu|fusil d'assaut|explosifs?)\b",
    _I,
)

URL = re.compile(
    r"https?://[^\s<>\"'”…]+|\b(?:www\.|pic\.twitter\.com/|maps\.app\.goo\.gl/)[^\s<>\"'”…]+", _I
)
MEDIA_URL = re.compile(
    r"pic\.twitter\.com|twitpic|yfrog|instagr\.?am|imgur|flickr|youtube\.com|youtu\.be|vimeo|"
    r"vine\.co|periscope|pscp\.tv|tiktok|twimg\.com|/photo/|/video/|"
    r"\.(?:jpe?g|png|gif|webp|mp4|mov|m3u8|webm)(?:\?|$)",
    _I,
)


def _gate(*sources: str) -> frozenset[str]:
    """First four letters of every word a pattern can start with: a post holding none of
    them cannot match, and skipping the (long, alternation-heavy) regex saves most of its cost.
    """
    words = re.findall(r"[^\W\d_]{2,}", " ".join(sources).lower())
    return frozenset(w[:4] for w in words)


VEHICLE_GATE = _gate(_COLOUR, _MAKE, "blk wht slv gry blu")
WEAPON_GATE = _gate(WEAPON.pattern)
# (gate, on digits, pattern): the pattern runs on a post holding a word that starts like one
# of its gate's (first four letters), or, when `on digits`, on any post with a letter by a
# digit ("6ft", "20s").
PERSON_PARTS: tuple[tuple[frozenset[str], bool, re.Pattern[str]], ...] = (
    (
        _gate(_CLOTHING, _LISTED_CLOTHING, "balaclavas masks hoodies hoods camo uniforms"),
        False,
        _CLOTHED,
    ),
    (_gate(_PERSON_NOUN), False, _DESCRIBED),
    (_gate("hair haired bald balding shaved ponytail dreadlocks dreads"), False, _HAIR),
    (_gate("all"), False, _ALL_IN),
    (
        _gate(
            "his her their aged age year years yr yrs build heavy heavyset beard moustache "
            "mustache tattoo scar goatee ft feet foot tall"
        ),
        True,
        _AGED_BUILT,
    ),
)
# Each place pattern runs only on a post holding one of its words (see `entities._places`).
STREET_GATE = _gate(
    _STREET_KIND,
    "calle avenida av paseo plaza rue avenue boulevard via viale piazza corso rua praça largo "
    "travessa",
)
NEAR_GATE = _gate("near outside opposite behind next front corner junction close")
NAMED_PLACE_GATE = _gate(NAMED_PLACE.pattern.split("\\s){1,3}", 1)[1])
ON_PLACE_GATE = _gate("on in down up along at towards toward into near outside off")
PLACE_GATE = STREET_GATE | NEAR_GATE | NAMED_PLACE_GATE | ON_PLACE_GATE
# The times with no digit: "just now", "moments ago", "ten minutes ago", "half past", "hace
# unos minutos", "há poucos minutos".
TIME_GATE = _gate("now ago quarter half hace há")
# Plates, postcodes and decade ages ("20s") all put a letter next to a digit.
LETTER_DIGIT = re.compile(r"[A-Za-z][ -]?[0-9]|[0-9][A-Za-z]|[0-9]'")
