package chat

// messages are the answer's own words, in the languages the console
// speaks; everything else in an answer is quoted from the document or
// written by the model.
type messages struct {
	retrieval   string // intro of a retrieval answer
	unavailable string // intro of a retrieval answer standing in for the model
	noMatch     string // retrieval found nothing
	noMatchLLM  string // the model was unavailable and retrieval found nothing
	interrupted string // the model stopped mid-answer
}

var texts = map[string]messages{
	"it": {
		retrieval:   "Risposta senza modello linguistico: ecco i passi del documento più pertinenti alla domanda.",
		unavailable: "Il modello linguistico non è disponibile: ecco invece i passi del documento più pertinenti alla domanda, trovati senza di esso.",
		noMatch:     "Non ho trovato nel documento passi pertinenti alla domanda (ricerca senza modello linguistico). Prova a riformularla con le parole del documento.",
		noMatchLLM:  "Il modello linguistico non è disponibile, e la ricerca senza di esso non ha trovato nel documento passi pertinenti alla domanda.",
		interrupted: "(La risposta del modello linguistico si è interrotta.)",
	},
	"en": {
		retrieval:   "Answer without a language model: these are the passages of the document most relevant to the question.",
		unavailable: "The language model is unavailable: these are instead the passages of the document most relevant to the question, found without it.",
		noMatch:     "I found no passage of the document relevant to the question (search without a language model). Try rephrasing it with the document's words.",
		noMatchLLM:  "The language model is unavailable, and the search without it found no passage of the document relevant to the question.",
		interrupted: "(The language model's answer was interrupted.)",
	},
}

func textsFor(lang string) messages {
	if m, ok := texts[lang]; ok {
		return m
	}
	return texts["it"]
}
