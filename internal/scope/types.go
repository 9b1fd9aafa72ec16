package scope

import "strings"

// resourceTypes are the FHIR resource types of R4 (4.0.1) and R5 (5.0.0).
// A scope naming any other type is invalid: no FHIR server serves it, and
// the consent page could not say what it is.
var resourceTypes = func() map[string]bool {
	names := `Account ActivityDefinition ActorDefinition AdministrableProductDefinition AdverseEvent
	AllergyIntolerance Appointment AppointmentResponse ArtifactAssessment AuditEvent Basic Binary
	BiologicallyDerivedProduct BiologicallyDerivedProductDispense BodyStructure Bundle CapabilityStatement
	CarePlan CareTeam CatalogEntry ChargeItem ChargeItemDefinition Citation Claim ClaimResponse
	ClinicalImpression ClinicalUseDefinition CodeSystem Communication CommunicationRequest
	CompartmentDefinition Composition ConceptMap Condition ConditionDefinition Consent Contract Coverage
	CoverageEligibilityRequest CoverageEligibilityResponse DetectedIssue Device DeviceAssociation
	DeviceDefinition DeviceDispense DeviceMetric DeviceRequest DeviceUsage DeviceUseStatement
	DiagnosticReport DocumentManifest DocumentReference EffectEvidenceSynthesis Encounter EncounterHistory
	Endpoint EnrollmentRequest EnrollmentResponse EpisodeOfCare EventDefinition Evidence EvidenceReport
	EvidenceVariable ExampleScenario ExplanationOfBenefit FamilyMemberHistory Flag FormularyItem
	GenomicStudy Goal GraphDefinition Group GuidanceResponse HealthcareService ImagingSelection
	ImagingStudy Immunization ImmunizationEvaluation ImmunizationRecommendation ImplementationGuide
	Ingredient InsurancePlan InventoryItem InventoryReport Invoice Library Linkage List Location
	ManufacturedItemDefinition Measure MeasureReport Media Medication MedicationAdministration
	MedicationDispense MedicationKnowledge MedicationRequest MedicationStatement MedicinalProduct
	MedicinalProductAuthorization MedicinalProductContraindication MedicinalProductDefinition
	MedicinalProductIndication MedicinalProductIngredient MedicinalProductInteraction
	MedicinalProductManufactured MedicinalProductPackaged MedicinalProductPharmaceutical
	MedicinalProductUndesirableEffect MessageDefinition MessageHeader MolecularSequence NamingSystem
	NutritionIntake NutritionOrder NutritionProduct Observation ObservationDefinition OperationDefinition
	OperationOutcome Organization OrganizationAffiliation PackagedProductDefinition Parameters Patient
	PaymentNotice PaymentReconciliation Permission Person PlanDefinition Practitioner PractitionerRole
	Procedure Provenance Questionnaire QuestionnaireResponse RegulatedAuthorization RelatedPerson
	RequestGroup RequestOrchestration Requirements ResearchDefinition ResearchElementDefinition
	ResearchStudy ResearchSubject RiskAssessment RiskEvidenceSynthesis Schedule SearchParameter
	ServiceRequest Slot Specimen SpecimenDefinition StructureDefinition StructureMap Subscription
	SubscriptionStatus SubscriptionTopic Substance SubstanceDefinition SubstanceNucleicAcid
	SubstancePolymer SubstanceProtein SubstanceReferenceInformation SubstanceSourceMaterial
	SubstanceSpecification SupplyDelivery SupplyRequest Task TerminologyCapabilities TestPlan TestReport
	TestScript Transport ValueSet VerificationResult VisionPrescription`
	m := map[string]bool{}
	for _, n := range strings.Fields(names) {
		m[n] = true
	}
	return m
}()

// IsResourceType reports whether name is a FHIR R4 or R5 resource type.
func IsResourceType(name string) bool { return resourceTypes[name] }
