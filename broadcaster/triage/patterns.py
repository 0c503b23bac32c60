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
# After a plate word, any 4-8 letter/digit registration that mixes letters and digits.
PLATE_AFTER_WORD = re.compile(
    r"\b(?:plates?|reg(?:istration)?|licen[cs]e|tag|matr[ií]cula|placa|targa|immatriculation)"
    r"(?:\s+(?:no\.?|number|num|#|plate|is|was|:))*[\s:#]+"
    r"((?=[A-Z0-9 -]{4,9}\b)(?=[A-Z0-9 -]*[0-9])(?=[A-Z0-9 -]*[A-Z])[A-Z0-9]+(?:[ -][A-Z0-9]+)?)",
    _I,
)
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
VEHICLE = re.compile(
    rf"\b{_COLOUR}\s+(?:{_MAKE}(?:\s+[A-Z0-9][\w-]*)?|{_TYPE}s?)\b"
    rf"|\b{_MAKE}\s+(?:{_TYPE}|[A-Z][a-z]+[0-9]*|[A-Z0-9]{{1,4}})\b",
    _I,
)

_CLOTHING = (
    r"(?:hoodie|hoody|hood|jacket|coat|jumper|sweater|sweatshirt|t-shirt|tshirt|shirt|top|"
    r"jeans|trousers|pants|shorts|tracksuit|trainers|sneakers|boots|shoes|cap|hat|beanie|"
    r"balaclava|mask|scarf|gloves|vest|uniform|clothing|clothes|backpack|rucksack|bag|"
    r"glasses|sunglasses|fatigues|camouflage|camo)"
)
PERSON = re.compile(
    rf"\b(?:wearing|dressed in|wore|in an?|clad in)\s+(?:an?\s+|the\s+|his\s+|her\s+)?"
    rf"(?:[\w-]+\s+){{0,3}}?{_CLOTHING}\b"
    r"|\bin (?:his|her|their) (?:early |mid |late |mid-)?(?:[1-9]0s|[1-9]0's|"
    r"teens|twenties|thirties|forties|fifties|sixties|seventies)\b"
    r"|\baged? (?:about |around )?[1-9][0-9]\b(?! (?:years? ago|years? later))"
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
STREET = re.compile(
    rf"\b(?:[A-Z][a-z'\u2019]+\s){{1,3}}{_STREET_KIND}\b"
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
    r"(?:the\s+)?(?:(?:[A-Z][\w'\u2019.-]*\s?){1,4}|(?:[a-z]+\s){0,2}" + _PLACE_NOUN + r"\b)"
)

COORDINATES = re.compile(
    r"(?<![\d.])(-?[0-9]{1,2}\.[0-9]{3,})\s*,\s*(-?[0-9]{1,3}\.[0-9]{3,})(?![\d.])"
)

TIME = re.compile(
    r"\b(?:at\s+)?(?:[01]?[0-9]|2[0-3]):[0-5][0-9](?:\s?[ap]\.?m\.?)?(?![:\d])"
    r"|\bat\s+(?:[01]?[0-9]|2[0-3])[.h][0-5][0-9]\b(?:\s?[ap]\.?m\.?)?"
    r"|\b(?:[1-9]|1[0-2])(?:[.:][0-5][0-9])?\s?[ap]\.?m\b\.?"
    r"|\b(?:[0-9]{1,3}|a few|few|several|a couple of|an?|half an)\s"
    r"(?:seconds?|secs?|minutes?|mins?|hours?|hrs?)\sago\b"
    r"|\bhace\s(?:[0-9]{1,3}|unos|pocos)\s(?:segundos|minutos|horas?)\b"
    r"|\bh[aá]\s(?:[0-9]{1,3}|poucos)\s(?:segundos|minutos|horas?)\b"
    r"|\b[0-9]{1,3}\s(?:minuti|ore)\sfa\b"
    r"|\bil y a\s[0-9]{1,3}\s(?:minutes?|heures?)\b"
    r"|\bjust now\b|\bmoments? ago\b",
    _I,
)

WEAPON = re.compile(
    r"\b(?:knife|knives|kitchen knife|machete|machetes|sword|axe|hammer|crossbow|handgun|"
    r"handguns|pistol|pistols|revolver|rifle|rifles|assault rifle|shotgun|shotguns|sniper rifle|"
    r"gun|guns|firearm|firearms|ak-?47s?|ar-?15s?|kalashnikovs?|kalachnikovs?|uzi|glock|"
    r"grenade|grenades|explosives?|bomb|bombs|pipe bomb|ied|suicide vest|suicide belt|"
    r"rocket launcher|rpg|molotov|"
    r"cuchillo|navaja|fusil|escopeta|arma de fuego|armas de fuego|"
    r"explosivos?|granada|faca|facão|espingarda|arma branca|coltello|fucile|"
    r"mitra|esplosivo|couteau|machette|arme à feu|armes à feu|fusil d'assaut|explosifs?)\b",
    _I,
)

URL = re.compile(r"https?://[^\s<>\"'”…]+|\bwww\.[^\s<>\"'”…]+", _I)
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


VEHICLE_GATE = _gate(_COLOUR, _MAKE)
WEAPON_GATE = _gate(WEAPON.pattern)
PERSON_GATE = _gate(
    _CLOTHING,
    "wearing dressed wore clad aged age year years yr yrs build heavy heavyset beard moustache "
    "mustache tattoo scar goatee teens twenties thirties forties fifties sixties seventies ft "
    "feet foot tall",
)
PLACE_GATE = _gate(
    _STREET_KIND,
    "near outside opposite behind next front corner junction close calle avenida av paseo "
    "plaza rue avenue boulevard via viale piazza corso rua praça largo travessa",
)
# Plates, postcodes and decade ages ("20s") all put a letter next to a digit.
LETTER_DIGIT = re.compile(r"[A-Za-z][ -]?[0-9]|[0-9][A-Za-z]|[0-9]'")
