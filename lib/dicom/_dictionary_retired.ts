// Retired data elements of DICOM PS3.6 (DCMTK's dicom.dic entries marked DICOM/retired;
// Copyright OFFIS e.V., BSD licence; see fixtures/LICENSE-dcmtk-dictionary.txt). Do not edit.
// Old planning and oncology systems still write them (e.g. (300A,0082) Beam Dose Specification
// Point in RT plans); without them an implicit VR file would show those values as UN.
// Generated with the same normalisation as scripts/gen_dictionary.ts (keywords without
// DCMTK's RETIRED_ prefix, as PS3.6 spells them).
// Lines: tag (8 hex digits) TAB VR TAB keyword TAB VM.
export const RETIRED = `00000001	UL	CommandLengthToEnd	1
00000010	SH	CommandRecognitionCode	1
00000200	AE	Initiator	1
00000300	AE	Receiver	1
00000400	AE	FindLocation	1
00000850	US	NumberOfMatches	1
00000860	US	ResponseSequenceNumber	1
00004000	LT	DialogReceiver	1
00004010	LT	TerminalType	1
00005010	SH	MessageSetID	1
00005020	SH	EndMessageID	1
00005110	LT	DisplayFormat	1
00005120	LT	PagePositionID	1
00005130	CS	TextFormatID	1
00005140	CS	NormalReverse	1
00005150	CS	AddGrayScale	1
00005160	CS	Borders	1
00005170	IS	Copies	1
00005180	CS	CommandMagnificationType	1
00005190	CS	Erase	1
000051A0	CS	Print	1
000051B0	US	Overlays	1-n
00041504	UL	MRDRDirectoryRecordOffset	1
00041600	UL	NumberOfReferences	1
00080001	UL	LengthToEnd	1
00080010	SH	RecognitionCode	1
00080024	DA	OverlayDate	1
00080025	DA	CurveDate	1
00080034	TM	OverlayTime	1
00080035	TM	CurveTime	1
00080040	US	DataSetType	1
00080041	LO	DataSetSubtype	1
00080042	CS	NuclearMedicineSeriesType	1
00081000	AE	NetworkID	1
00081100	SQ	ReferencedResultsSequence	1
00081130	SQ	ReferencedOverlaySequence	1
00081145	SQ	ReferencedCurveSequence	1
00082110	CS	LossyImageCompressionRetired	1
00082200	CS	TransducerPosition	1
00082204	CS	TransducerOrientation	1
00082208	CS	AnatomicStructure	1
00082229	SQ	AnatomicStructureSpaceOrRegionSequence	1
00082240	SQ	TransducerPositionSequence	1
00082242	SQ	TransducerPositionModifierSequence	1
00082244	SQ	TransducerOrientationSequence	1
00082246	SQ	TransducerOrientationModifierSequence	1
00082251	SQ	AnatomicStructureSpaceOrRegionCodeSequenceTrial	1
00082253	SQ	AnatomicPortalOfEntranceCodeSequenceTrial	1
00082255	SQ	AnatomicApproachDirectionCodeSequenceTrial	1
00082256	ST	AnatomicPerspectiveDescriptionTrial	1
00082257	SQ	AnatomicPerspectiveCodeSequenceTrial	1
00082258	ST	AnatomicLocationOfExaminingInstrumentDescriptionTrial	1
00082259	SQ	AnatomicLocationOfExaminingInstrumentCodeSequenceTrial	1
0008225A	SQ	AnatomicStructureSpaceOrRegionModifierCodeSequenceTrial	1
0008225C	SQ	OnAxisBackgroundAnatomicStructureCodeSequenceTrial	1
00084000	LT	IdentifyingComments	1
00101000	LO	OtherPatientIDs	1-n
00101050	LO	InsurancePlanIdentification	1-n
00101090	LO	MedicalRecordLocator	1
00140023	ST	CADFileFormat	1
00140024	ST	ComponentReferenceSystem	1
00140045	ST	MaterialPropertiesFileFormatRetired	1
00180030	LO	Radionuclide	1-n
00180032	DS	EnergyWindowCenterline	1
00180033	DS	EnergyWindowTotalWidth	1-n
00180037	CS	TherapyType	1
00180039	CS	TherapyDescription	1
00181011	LO	HardcopyCreationDeviceID	1
00181017	LO	HardcopyDeviceManufacturer	1
0018101A	LO	HardcopyDeviceSoftwareVersion	1-n
0018101B	LO	HardcopyDeviceManufacturerModelName	1
00181141	DS	AngularPosition	1
00181146	DS	RotationOffset	1-n
00181240	IS	UpperLowerPixelValues	1-n
00184000	LT	AcquisitionComments	1
00185021	LO	PostprocessingFunction	1
00185030	DS	DynamicRange	1
00185040	DS	TotalGain	1
00185210	DS	ImageTransformationMatrix	6
00185212	DS	ImageTranslationVector	3
00186038	UL	DopplerSampleVolumeXPositionRetired	1
0018603A	UL	DopplerSampleVolumeYPositionRetired	1
0018603C	UL	TMLinePositionX0Retired	1
0018603E	UL	TMLinePositionY0Retired	1
00186040	UL	TMLinePositionX1Retired	1
00186042	UL	TMLinePositionY1Retired	1
00189096	FD	ParallelReductionFactorInPlaneRetired	1
00189166	CS	BulkMotionStatus	1
00189195	FD	ChemicalShiftMinimumIntegrationLimitInHz	1
00189196	FD	ChemicalShiftMaximumIntegrationLimitInHz	1
00189324	FD	EstimatedDoseSaving	1
00200014	IS	IsotopeNumber	1
00200015	IS	PhaseNumber	1
00200016	IS	IntervalNumber	1
00200017	IS	TimeSlotNumber	1
00200018	IS	AngleNumber	1
00200022	IS	OverlayNumber	1
00200024	IS	CurveNumber	1
00200026	IS	LUTNumber	1
00200030	DS	ImagePosition	3
00200035	DS	ImageOrientation	6
00200050	DS	Location	1
00200070	LO	ImageGeometryType	1
00200080	CS	MaskingImage	1-n
002000AA	IS	ReportNumber	1
00201000	IS	SeriesInStudy	1
00201001	IS	AcquisitionsInSeries	1
00201003	IS	ImagesInSeries	1
00201004	IS	AcquisitionsInStudy	1
00201005	IS	ImagesInStudy	1
00201020	LO	Reference	1-n
00201070	IS	OtherStudyNumbers	1-n
00203401	CS	ModifyingDeviceID	1
00203402	CS	ModifiedImageID	1
00203403	DA	ModifiedImageDate	1
00203404	LO	ModifyingDeviceManufacturer	1
00203405	TM	ModifiedImageTime	1
00203406	LO	ModifiedImageDescription	1
00205000	AT	OriginalImageIdentification	1-n
00205002	LO	OriginalImageIdentificationNomenclature	1-n
00221094	LO	LensConstantDescription	1
00221153	SQ	OphthalmicAxialLengthAcquisitionMethodCodeSequence	1
00221265	SQ	OphthalmicAxialLengthQualityMetricTypeCodeSequence	1
00221273	LO	OphthalmicAxialLengthQualityMetricTypeDescription	1
00280005	US	ImageDimensions	1
00280012	US	Planes	1
00280040	CS	ImageFormat	1
00280050	LO	ManipulatedImage	1-n
0028005F	LO	CompressionRecognitionCode	1
00280060	CS	CompressionCode	1
00280061	SH	CompressionOriginator	1
00280062	LO	CompressionLabel	1
00280063	SH	CompressionDescription	1
00280065	CS	CompressionSequence	1-n
00280066	AT	CompressionStepPointers	1-n
00280068	US	RepeatInterval	1
00280069	US	BitsGrouped	1
00280070	US	PerimeterTable	1-n
00280071	US|SS	PerimeterValue	1
00280080	US	PredictorRows	1
00280081	US	PredictorColumns	1
00280082	US	PredictorConstants	1-n
00280090	CS	BlockedPixels	1
00280091	US	BlockRows	1
00280092	US	BlockColumns	1
00280093	US	RowOverlap	1
00280094	US	ColumnOverlap	1
00280104	US|SS	SmallestValidPixelValue	1
00280105	US|SS	LargestValidPixelValue	1
00280110	US|SS	SmallestImagePixelValueInPlane	1
00280111	US|SS	LargestImagePixelValueInPlane	1
00280200	US	ImageLocation	1
00280400	LO	TransformLabel	1
00280401	LO	TransformVersionNumber	1
00280402	US	NumberOfTransformSteps	1
00280403	LO	SequenceOfCompressedData	1-n
00280404	AT	DetailsOfCoefficients	1-n
00280700	LO	DCTLabel	1
00280701	CS	DataBlockDescription	1-n
00280702	AT	DataBlock	1-n
00280710	US	NormalizationFactorFormat	1
00280720	US	ZonalMapNumberFormat	1
00280721	AT	ZonalMapLocation	1-n
00280722	US	ZonalMapFormat	1
00280730	US	AdaptiveMapFormat	1
00280740	US	CodeNumberFormat	1
00281080	CS	GrayScale	1
00281100	US|SS	GrayLookupTableDescriptor	3
00281111	US|SS	LargeRedPaletteColorLookupTableDescriptor	4
00281112	US|SS	LargeGreenPaletteColorLookupTableDescriptor	4
00281113	US|SS	LargeBluePaletteColorLookupTableDescriptor	4
00281200	OW|LT	GrayLookupTableData	1-n
00281211	OW	LargeRedPaletteColorLookupTableData	1
00281212	OW	LargeGreenPaletteColorLookupTableData	1
00281213	OW	LargeBluePaletteColorLookupTableData	1
00281214	UI	LargePaletteColorLookupTableUID	1
00284000	LT	ImagePresentationComments	1
00285000	SQ	BiPlaneAcquisitionSequence	1
00286030	US	MaskPointers	1-n
00289099	US	LargestMonochromePixelValue	1
0032000A	CS	StudyStatusID	1
0032000C	CS	StudyPriorityID	1
00320012	LO	StudyIDIssuer	1
00320032	DA	StudyVerifiedDate	1
00320033	TM	StudyVerifiedTime	1
00320034	DA	StudyReadDate	1
00320035	TM	StudyReadTime	1
00321000	DA	ScheduledStudyStartDate	1
00321001	TM	ScheduledStudyStartTime	1
00321010	DA	ScheduledStudyStopDate	1
00321011	TM	ScheduledStudyStopTime	1
00321020	LO	ScheduledStudyLocation	1
00321021	AE	ScheduledStudyLocationAETitle	1-n
00321030	LO	ReasonForStudy	1
00321040	DA	StudyArrivalDate	1
00321041	TM	StudyArrivalTime	1
00321050	DA	StudyCompletionDate	1
00321051	TM	StudyCompletionTime	1
00321055	CS	StudyComponentStatusID	1
00324000	LT	StudyComments	1
00380011	LO	IssuerOfAdmissionID	1
0038001A	DA	ScheduledAdmissionDate	1
0038001B	TM	ScheduledAdmissionTime	1
0038001C	DA	ScheduledDischargeDate	1
0038001D	TM	ScheduledDischargeTime	1
0038001E	LO	ScheduledPatientInstitutionResidence	1
00380030	DA	DischargeDate	1
00380032	TM	DischargeTime	1
00380040	LO	DischargeDiagnosisDescription	1
00380044	SQ	DischargeDiagnosisCodeSequence	1
00380061	LO	IssuerOfServiceEpisodeID	1
00400300	US	TotalTimeOfFluoroscopy	1
00400301	US	TotalNumberOfExposures	1
00400307	DS	DistanceSourceToSupport	1
0040030E	SQ	ExposureDoseSequence	1
00400330	SQ	ReferencedProcedureStepSequence	1
0040050A	LO	SpecimenAccessionNumber	1
00400550	SQ	SpecimenSequence	1
00400552	SQ	SpecimenDescriptionSequenceTrial	1
00400553	ST	SpecimenDescriptionTrial	1
004006FA	LO	SlideIdentifier	1
004008D8	SQ	PixelSpacingSequence	1
004008DA	SQ	CoordinateSystemAxisCodeSequence	1
004009F8	SQ	VitalStainCodeSequenceTrial	1
00401006	SH	PlacerOrderNumberProcedure	1
00401007	SH	FillerOrderNumberProcedure	1
00401060	LO	RequestedProcedureDescriptionTrial	1
00402001	LO	ReasonForTheImagingServiceRequest	1
00402006	SH	PlacerOrderNumberImagingServiceRequestRetired	1
00402007	SH	FillerOrderNumberImagingServiceRequestRetired	1
00404001	CS	GeneralPurposeScheduledProcedureStepStatus	1
00404002	CS	GeneralPurposePerformedProcedureStepStatus	1
00404003	CS	GeneralPurposeScheduledProcedureStepPriority	1
00404004	SQ	ScheduledProcessingApplicationsCodeSequence	1
00404006	CS	MultipleCopiesFlag	1
00404007	SQ	PerformedProcessingApplicationsCodeSequence	1
00404015	SQ	ResultingGeneralPurposePerformedProcedureStepsSequence	1
00404016	SQ	ReferencedGeneralPurposeScheduledProcedureStepSequence	1
00404020	CS	InputAvailabilityFlag	1
00404022	SQ	RelevantInformationSequence	1
00404023	UI	ReferencedGeneralPurposeScheduledProcedureStepTransactionUID	1
00404031	SQ	RequestedSubsequentWorkitemCodeSequence	1
00404032	SQ	NonDICOMOutputCodeSequence	1
0040A007	CS	FindingsFlagTrial	1
0040A020	SQ	FindingsSequenceTrial	1
0040A021	UI	FindingsGroupUIDTrial	1
0040A022	UI	ReferencedFindingsGroupUIDTrial	1
0040A023	DA	FindingsGroupRecordingDateTrial	1
0040A024	TM	FindingsGroupRecordingTimeTrial	1
0040A026	SQ	FindingsSourceCategoryCodeSequenceTrial	1
0040A028	SQ	DocumentingOrganizationIdentifierCodeSequenceTrial	1
0040A047	LO	MeasurementPrecisionDescriptionTrial	1
0040A057	CS	UrgencyOrPriorityAlertsTrial	1-n
0040A060	LO	SequencingIndicatorTrial	1
0040A066	SQ	DocumentIdentifierCodeSequenceTrial	1
0040A067	PN	DocumentAuthorTrial	1
0040A068	SQ	DocumentAuthorIdentifierCodeSequenceTrial	1
0040A070	SQ	IdentifierCodeSequenceTrial	1
0040A074	OB	ObjectBinaryIdentifierTrial	1
0040A076	SQ	DocumentingObserverIdentifierCodeSequenceTrial	1
0040A085	SQ	ProcedureIdentifierCodeSequenceTrial	1
0040A089	OB	ObjectDirectoryBinaryIdentifierTrial	1
0040A090	SQ	EquivalentCDADocumentSequence	1
0040A110	DA	DateOfDocumentOrVerbalTransactionTrial	1
0040A112	TM	TimeOfDocumentCreationOrVerbalTransactionTrial	1
0040A125	CS	ReportStatusIDTrial	2
0040A136	US	ReferencedFrameNumbers	1-n
0040A167	SQ	ObservationCategoryCodeSequenceTrial	1
0040A16A	ST	BibliographicCitationTrial	1
0040A172	UI	ReferencedObservationUIDTrial	1
0040A173	CS	ReferencedObservationClassTrial	1
0040A174	CS	ReferencedObjectObservationClassTrial	1
0040A192	DA	ObservationDateTrial	1
0040A193	TM	ObservationTimeTrial	1
0040A194	CS	MeasurementAutomationTrial	1
0040A224	ST	IdentificationDescriptionTrial	1
0040A290	CS	CoordinatesSetGeometricTypeTrial	1
0040A296	SQ	AlgorithmCodeSequenceTrial	1
0040A297	ST	AlgorithmDescriptionTrial	1
0040A29A	SL	PixelCoordinatesSetTrial	2-2n
0040A307	PN	CurrentObserverTrial	1
0040A313	SQ	ReferencedAccessionSequenceTrial	1
0040A33A	ST	ReportStatusCommentTrial	1
0040A340	SQ	ProcedureContextSequenceTrial	1
0040A352	PN	VerbalSourceTrial	1
0040A353	ST	AddressTrial	1
0040A354	LO	TelephoneNumberTrial	1
0040A358	SQ	VerbalSourceIdentifierCodeSequenceTrial	1
0040A380	SQ	ReportDetailSequenceTrial	1
0040A402	UI	ObservationSubjectUIDTrial	1
0040A403	CS	ObservationSubjectClassTrial	1
0040A404	SQ	ObservationSubjectTypeCodeSequenceTrial	1
0040A600	CS	ObservationSubjectContextFlagTrial	1
0040A601	CS	ObserverContextFlagTrial	1
0040A603	CS	ProcedureContextFlagTrial	1
0040A731	SQ	RelationshipSequenceTrial	1
0040A732	SQ	RelationshipTypeCodeSequenceTrial	1
0040A744	SQ	LanguageCodeSequenceTrial	1
0040A992	ST	UniformResourceLocatorTrial	1
0040DB06	DT	TemplateVersion	1
0040DB07	DT	TemplateLocalVersion	1
0040DB0B	CS	TemplateExtensionFlag	1
0040DB0C	UI	TemplateExtensionOrganizationUID	1
0040DB0D	UI	TemplateExtensionCreatorUID	1
00480200	SQ	ReferencedImageNavigationSequence	1
00480201	US	TopLeftHandCornerOfLocalizerArea	2
00480202	US	BottomRightHandCornerOfLocalizerArea	2
00541400	CS	CountsIncluded	1-n
00541401	CS	DeadTimeCorrectionFlag	1
00660023	OW	TrianglePointIndexList	1
00660024	OW	EdgePointIndexList	1
00660025	OW	VertexPointIndexList	1
00660029	OW	PrimitivePointIndexList	1
00700040	IS	ImageRotationRetired	1
00700050	US	DisplayedAreaTopLeftHandCornerTrial	2
00700051	US	DisplayedAreaBottomRightHandCornerTrial	2
00700067	US	GraphicLayerRecommendedDisplayRGBValue	3
00701206	CS	CompositingMethod	1
00741024	IS	BeamOrderIndexTrial	1
00741038	DS	DoubleExposureMetersetTrial	1
0074103A	DS	DoubleExposureFieldDeltaTrial	4
00741220	SQ	RelatedProcedureStepSequence	1
00741222	LO	ProcedureStepRelationshipType	1
00880904	LO	TopicTitle	1
00880906	ST	TopicSubject	1
00880910	LO	TopicAuthor	1
00880912	LO	TopicKeywords	1-32
20000062	CS	ColorImagePrintingFlag	1
20000063	CS	CollationFlag	1
20000065	CS	AnnotationFlag	1
20000067	CS	ImageOverlayFlag	1
20000069	CS	PresentationLUTFlag	1
2000006A	CS	ImageBoxPresentationLUTFlag	1
20000510	SQ	ReferencedStoredPrintSequence	1
20200130	SQ	ReferencedImageOverlayBoxSequence	1
20200140	SQ	ReferencedVOILUTBoxSequence	1
20400010	SQ	ReferencedOverlayPlaneSequence	1
20400011	US	ReferencedOverlayPlaneGroups	1-99
20400020	SQ	OverlayPixelDataSequence	1
20400060	CS	OverlayMagnificationType	1
20400070	CS	OverlaySmoothingType	1
20400072	CS	OverlayOrImageMagnification	1
20400074	US	MagnifyToNumberOfColumns	1
20400080	CS	OverlayForegroundDensity	1
20400082	CS	OverlayBackgroundDensity	1
20400090	CS	OverlayMode	1
20400100	CS	ThresholdDensity	1
20400500	SQ	ReferencedImageBoxSequenceRetired	1
21000010	SH	PrintJobID	1
21000500	SQ	ReferencedPrintJobSequencePullStoredPrint	1
21100099	SH	PrintQueueID	1
21200010	CS	QueueStatus	1
21200050	SQ	PrintJobDescriptionSequence	1
21200070	SQ	ReferencedPrintJobSequence	1
21300010	SQ	PrintManagementCapabilitiesSequence	1
21300015	SQ	PrinterCharacteristicsSequence	1
21300030	SQ	FilmBoxContentSequence	1
21300040	SQ	ImageBoxContentSequence	1
21300050	SQ	AnnotationContentSequence	1
21300060	SQ	ImageOverlayBoxContentSequence	1
21300080	SQ	PresentationLUTContentSequence	1
30060044	DS	ContourSlabThickness	1
30060045	DS	ContourOffsetVector	3
30060049	IS	AttachedContours	1-n
300600B9	SQ	AdditionalRTROIIdentificationCodeSequence	1
300600C0	SQ	FrameOfReferenceRelationshipSequence	1
300600C2	UI	RelatedFrameOfReferenceUID	1
300600C4	CS	FrameOfReferenceTransformationType	1
300A000B	LO	TreatmentSites	1-n
300A0082	DS	BeamDoseSpecificationPoint	3
300A008D	FL	AverageBeamDosePointDepth	1
300A008E	FL	AverageBeamDosePointEquivalentDepth	1
300A008F	FL	AverageBeamDosePointSSD	1
300A0632	SQ	ReferencedRTPatientSetupSequence	1
300A0650	UI	PatientSetupUID	1
40000010	LT	Arbitrary	1
40004000	LT	TextComments	1
40080040	SH	ResultsID	1
40080042	LO	ResultsIDIssuer	1
40080050	SQ	ReferencedInterpretationSequence	1
400800FF	CS	ReportProductionStatusTrial	1
40080100	DA	InterpretationRecordedDate	1
40080101	TM	InterpretationRecordedTime	1
40080102	PN	InterpretationRecorder	1
40080103	LO	ReferenceToRecordedSound	1
40080108	DA	InterpretationTranscriptionDate	1
40080109	TM	InterpretationTranscriptionTime	1
4008010A	PN	InterpretationTranscriber	1
4008010B	ST	InterpretationText	1
4008010C	PN	InterpretationAuthor	1
40080111	SQ	InterpretationApproverSequence	1
40080112	DA	InterpretationApprovalDate	1
40080113	TM	InterpretationApprovalTime	1
40080114	PN	PhysicianApprovingInterpretation	1
40080115	LT	InterpretationDiagnosisDescription	1
40080117	SQ	InterpretationDiagnosisCodeSequence	1
40080118	SQ	ResultsDistributionListSequence	1
40080119	PN	DistributionName	1
4008011A	LO	DistributionAddress	1
40080200	SH	InterpretationID	1
40080202	LO	InterpretationIDIssuer	1
40080210	CS	InterpretationTypeID	1
40080212	CS	InterpretationStatusID	1
40080300	ST	Impressions	1
40084000	ST	ResultsComments	1
7FE00020	OW	CoefficientsSDVN	1
7FE00030	OW	CoefficientsSDHN	1
7FE00040	OW	CoefficientsSDDN	1
00280410	US	RowsForNthOrderCoefficients	1
00280411	US	ColumnsForNthOrderCoefficients	1
00280412	LO	CoefficientCoding	1-n
00280413	AT	CoefficientCodingPointers	1-n
00280800	CS	CodeLabel	1-n
00280802	US	NumberOfTables	1
00280803	AT	CodeTableLocation	1-n
00280804	US	BitsForCodeWord	1
00280808	AT	ImageDataLocation	1-n
10000010	US	EscapeTriplet	3
10000011	US	RunLengthTriplet	3
10000012	US	HuffmanTableSize	1
10000013	US	HuffmanTableTriplet	3
10000014	US	ShiftTableSize	1
10000015	US	ShiftTableTriplet	3
10100004	US	ZonalMap	1-n`;
// Retired repeating groups (curves 50xx, retired overlay elements 60xx, variable pixel data 7Fxx,
// source image IDs (0020,31xx)): masks with xx, last column e (even groups), o (odd) or u (both).
export const RETIRED_REPEATING = `002031xx	CS	SourceImageIDs	1-n	e
50xx0005	US	CurveDimensions	1	e
50xx0010	US	NumberOfPoints	1	e
50xx0020	CS	TypeOfData	1	e
50xx0022	LO	CurveDescription	1	e
50xx0030	SH	AxisUnits	1-n	e
50xx0040	SH	AxisLabels	1-n	e
50xx0103	US	DataValueRepresentation	1	e
50xx0104	US	MinimumCoordinateValue	1-n	e
50xx0105	US	MaximumCoordinateValue	1-n	e
50xx0106	SH	CurveRange	1-n	e
50xx0110	US	CurveDataDescriptor	1-n	e
50xx0112	US	CoordinateStartValue	1-n	e
50xx0114	US	CoordinateStepValue	1-n	e
50xx1001	CS	CurveActivationLayer	1	e
50xx2000	US	AudioType	1	e
50xx2002	US	AudioSampleFormat	1	e
50xx2004	US	NumberOfChannels	1	e
50xx2006	UL	NumberOfSamples	1	e
50xx2008	UL	SampleRate	1	e
50xx200A	UL	TotalTime	1	e
50xx200C	OB|OW	AudioSampleData	1	e
50xx200E	LT	AudioComments	1	e
50xx2500	LO	CurveLabel	1	e
50xx2600	SQ	CurveReferencedOverlaySequence	1	e
50xx2610	US	CurveReferencedOverlayGroup	1	e
50xx3000	OB|OW	CurveData	1	e
60xx0012	US	OverlayPlanes	1	e
60xx0052	US	OverlayPlaneOrigin	1	e
60xx0060	CS	OverlayCompressionCode	1	e
60xx0061	SH	OverlayCompressionOriginator	1	e
60xx0062	SH	OverlayCompressionLabel	1	e
60xx0063	CS	OverlayCompressionDescription	1	e
60xx0066	AT	OverlayCompressionStepPointers	1-n	e
60xx0068	US	OverlayRepeatInterval	1	e
60xx0069	US	OverlayBitsGrouped	1	e
60xx0110	CS	OverlayFormat	1	e
60xx0200	US	OverlayLocation	1	e
60xx0800	CS	OverlayCodeLabel	1-n	e
60xx0802	US	OverlayNumberOfTables	1	e
60xx0803	AT	OverlayCodeTableLocation	1-n	e
60xx0804	US	OverlayBitsForCodeWord	1	e
60xx1100	US	OverlayDescriptorGray	1	e
60xx1101	US	OverlayDescriptorRed	1	e
60xx1102	US	OverlayDescriptorGreen	1	e
60xx1103	US	OverlayDescriptorBlue	1	e
60xx1200	US	OverlaysGray	1-n	e
60xx1201	US	OverlaysRed	1-n	e
60xx1202	US	OverlaysGreen	1-n	e
60xx1203	US	OverlaysBlue	1-n	e
60xx4000	LT	OverlayComments	1	e
7Fxx0010	OB|OW	VariablePixelData	1	e
7Fxx0011	US	VariableNextDataGroup	1	e
7Fxx0020	OW	VariableCoefficientsSDVN	1	e
7Fxx0030	OW	VariableCoefficientsSDHN	1	e
7Fxx0040	OW	VariableCoefficientsSDDN	1	e`;
